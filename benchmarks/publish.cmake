# SPDX-License-Identifier: MIT
# bench_publish: a real discd's publish latency (control socket -> visible to a
# waiting reader) beside a Unix-socket round trip and a futex wake-up, and its
# throughput. Run: build/benchmarks/bench_publish [--quick] [--md F] [--json F]
add_executable(bench_publish ${CMAKE_CURRENT_LIST_DIR}/bench_publish.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_discd.c
  ${CMAKE_SOURCE_DIR}/tests/harness/discd_proc.c ${CMAKE_SOURCE_DIR}/tests/harness/proc.c)
target_include_directories(bench_publish PRIVATE ${CMAKE_SOURCE_DIR}/tests/harness)
target_link_libraries(bench_publish PRIVATE bench_report discshm_static Threads::Threads)
add_dependencies(bench_publish discd)
