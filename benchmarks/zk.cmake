# SPDX-License-Identifier: MIT
# bench_zk: ZooKeeper layer latency vs raw ZooKeeper (scripts/bench.sh runs it; benchmarks/RESULTS.md).
include(${CMAKE_SOURCE_DIR}/daemon/zk/zk_sync.cmake)
add_executable(bench_zk ${CMAKE_CURRENT_LIST_DIR}/bench_zk.c
  ${CMAKE_SOURCE_DIR}/tests/harness/zk_server.c)
target_include_directories(bench_zk PRIVATE ${CMAKE_SOURCE_DIR}/tests/harness)
target_link_libraries(bench_zk PRIVATE bench_report bench_zkraw disczk discpub discshm_static PkgConfig::UUID)
