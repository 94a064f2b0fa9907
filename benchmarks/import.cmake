# SPDX-License-Identifier: MIT
# bench_import: a fresh discd's initial sync from a 10k-instance Curator
# x-discovery tree (import = curator) beside the native tree of the same size,
# same run (issue 12). Run: build-*/benchmarks/bench_import [-n N] [-s S] [-H H]
# [-r R] [--quick] [--md FILE] [--json FILE]
add_executable(bench_import ${CMAKE_CURRENT_LIST_DIR}/bench_import.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_discd.c
  ${CMAKE_SOURCE_DIR}/tests/harness/zk_server.c
  ${CMAKE_SOURCE_DIR}/tests/harness/discd_proc.c
  ${CMAKE_SOURCE_DIR}/tests/harness/proc.c)
target_include_directories(bench_import PRIVATE ${CMAKE_SOURCE_DIR}/tests/harness
  ${ZOOKEEPER_INCLUDE_DIR})
target_compile_definitions(bench_import PRIVATE THREADED)
target_link_libraries(bench_import PRIVATE discshm_static ${ZOOKEEPER_MT_LIB}
  bench_report PkgConfig::JANSSON PkgConfig::UUID Threads::Threads)
add_dependencies(bench_import discd)
