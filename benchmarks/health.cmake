# SPDX-License-Identifier: MIT
# bench_health: CPU of the one health-checker thread with 10k instances.
# Run: build-*/benchmarks/bench_health --instances 10000 --interval 1000 --seconds 15
add_executable(bench_health ${CMAKE_CURRENT_SOURCE_DIR}/bench_health.c
  ${CMAKE_SOURCE_DIR}/daemon/checks/health.c)
target_include_directories(bench_health PRIVATE ${DISCD_PART_DIRS})
target_link_libraries(bench_health PRIVATE bench_report PkgConfig::CURL Threads::Threads)
