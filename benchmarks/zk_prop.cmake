# SPDX-License-Identifier: MIT
# bench_zk_prop: region propagation end to end (two real discd processes on a
# loopback ZooKeeper) beside raw ZooKeeper baselines in the same run (issue 9).
# Run: build-*/benchmarks/bench_zk_prop [-n N] [--quick] [--md FILE] [--json FILE]
add_executable(bench_zk_prop ${CMAKE_CURRENT_LIST_DIR}/bench_zk_prop.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_discd.c
  ${CMAKE_SOURCE_DIR}/tests/harness/zk_server.c
  ${CMAKE_SOURCE_DIR}/tests/harness/discd_proc.c
  ${CMAKE_SOURCE_DIR}/tests/harness/proc.c)
target_include_directories(bench_zk_prop PRIVATE ${CMAKE_SOURCE_DIR}/tests/harness
  ${ZOOKEEPER_INCLUDE_DIR})
target_compile_definitions(bench_zk_prop PRIVATE THREADED)
target_link_libraries(bench_zk_prop PRIVATE discshm_static ${ZOOKEEPER_MT_LIB}
  bench_report PkgConfig::JANSSON PkgConfig::UUID Threads::Threads)
add_dependencies(bench_zk_prop discd) # it runs two of them
