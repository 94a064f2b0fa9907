# SPDX-License-Identifier: MIT
# bench_lookup: lookups vs the in-process floor, an rwlock table, a Unix-socket
# agent and a loopback ZooKeeper; callgrind instruction counts; reader scaling.
add_executable(bench_lookup ${CMAKE_CURRENT_LIST_DIR}/bench_lookup.c
  ${CMAKE_SOURCE_DIR}/tests/harness/zk_server.c)
target_include_directories(bench_lookup PRIVATE ${CMAKE_SOURCE_DIR}/tests/harness
  ${ZOOKEEPER_INCLUDE_DIR})
target_compile_definitions(bench_lookup PRIVATE THREADED)
target_link_libraries(bench_lookup PRIVATE bench_report discpub discshm_static
  ${ZOOKEEPER_MT_LIB} Threads::Threads)
