/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cache_load.c — libFuzzer harness: discd's start-up load of its file
 * cache (cache_load.c) from an arbitrary image (made a file as in
 * fuzz_segment.c), into a real registry, then the purge that follows the
 * first ZooKeeper sync.
 */
#include <stdint.h>
#include <unistd.h>

#include "cache_load.h"
#include "fuzz_image.h"
#include "log.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct registry *reg;
    if (!reg) {
        log_set_level(LOG_LVL_ERROR);
        registry_thread_online();
        struct registry_config cfg = {0};
        reg = registry_new(&cfg);
        if (!reg)
            __builtin_trap();
    }
    char path[64];
    int fd = fuzz_image_file(data, size, path, sizeof(path));
    if (fd < 0)
        return 0;
    (void)cache_load(reg, path, "fuzz-own-host");
    (void)cache_purge(reg);
    size_t n;
    registry_free_changes(registry_take_changes(reg, &n));
    close(fd);
    return 0;
}
