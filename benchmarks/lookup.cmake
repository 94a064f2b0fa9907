# SPDX-License-Identifier: MIT
add_executable(bench_lookup ${CMAKE_CURRENT_LIST_DIR}/bench_lookup.c)
target_link_libraries(bench_lookup PRIVATE bench_report discpub discshm_static Threads::Threads)
