# SPDX-License-Identifier: MIT
# bench_import: a fresh discd's initial sync from a 10k-instance Curator
# x-discovery tree (import = curator) beside the native tree of the same size,
# same run (issue 12). Run: build-*/benchmarks/bench_import [-n N] [-s S] [-H H]
# [-r R] [--quick] [--md FILE] [--json FILE]
disc_discd_bench(bench_import)
target_link_libraries(bench_import PRIVATE bench_zkraw)
