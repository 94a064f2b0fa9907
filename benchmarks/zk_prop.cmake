# SPDX-License-Identifier: MIT
# bench_zk_prop: region propagation end to end (two real discd processes on a
# loopback ZooKeeper) beside raw ZooKeeper baselines in the same run (issue 9).
# Run: build-*/benchmarks/bench_zk_prop [-n N] [--quick] [--md FILE] [--json FILE]
disc_discd_bench(bench_zk_prop) # it runs two discd
target_link_libraries(bench_zk_prop PRIVATE bench_zkraw)
