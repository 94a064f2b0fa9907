# SPDX-License-Identifier: MIT
# bench_pick: filtered lookup + pick latency next to plain lookups, same run.
# Run: build-*/benchmarks/bench_pick --services 1000 --instances 10 --ops 200000
add_executable(bench_pick ${CMAKE_CURRENT_SOURCE_DIR}/bench_pick.c)
target_link_libraries(bench_pick PRIVATE bench_report discpub discshm_static Threads::Threads)
