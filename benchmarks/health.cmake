# SPDX-License-Identifier: MIT
# bench_health: CPU of a real discd's health checks (10k tcp checks/s, http,
# ttl) beside the bare connect floor. Run: build/benchmarks/bench_health
# [--kind tcp|http|ttl|all] [--quick] [--md F] [--json F]; see
# benchmarks/RESULTS_health.md.
add_executable(bench_health ${CMAKE_CURRENT_SOURCE_DIR}/bench_health.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_discd.c
  ${CMAKE_SOURCE_DIR}/tests/harness/discd_proc.c ${CMAKE_SOURCE_DIR}/tests/harness/proc.c)
target_include_directories(bench_health PRIVATE ${CMAKE_SOURCE_DIR}/tests/harness)
target_link_libraries(bench_health PRIVATE bench_report Threads::Threads)
add_dependencies(bench_health discd)
