# SPDX-License-Identifier: MIT
# bench_grow: a registry of a million instances through the segment writer:
# bytes per instance, one change's commit latency, a full republish (roll-over),
# each beside a 1,000-instance registry in the same run.
add_executable(bench_grow ${CMAKE_CURRENT_LIST_DIR}/bench_grow.c)
target_include_directories(bench_grow PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
target_link_libraries(bench_grow PRIVATE bench_report discpub discshm_static m)
