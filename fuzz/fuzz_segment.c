/* SPDX-License-Identifier: MIT */
/*
 * fuzz_segment.c — libFuzzer harness: open an arbitrary image file and
 * walk all of it through libdiscshm's public API (tests/harness/disc_walk.c:
 * every lookup, list, filter, pick and view call, the zero-copy walks, the
 * tag and endpoint accessors), with or without DISC_OPEN_VERIFY — the
 * input's last byte chooses, and one of three filters. A crash, sanitizer
 * report, leak, hang (libFuzzer's -timeout) or a violated invariant of the
 * walk (an undocumented error, a string beyond its limit) is a finding.
 */
#include <stdint.h>
#include <unistd.h>

#include "disc_walk.h"
#include "discshm.h"
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char buf[1 << 20];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_image_file(data, size, path, sizeof(path));
    if (fd < 0)
        return 0;
    unsigned variant = size ? data[size - 1] : 0;
    disc_handle *h;
    if (disc_open_file(path, (variant & 0x80) ? DISC_OPEN_VERIFY : 0, &h) == 0) {
        struct disc_walk_stats st = {0};
        if (disc_walk_all(h, variant, 0, buf, sizeof(buf), &st) < 0) {
            fprintf(stderr, "fuzz_segment: invariant violated: %s\n", st.why);
            __builtin_trap();
        }
        disc_close(h);
    }
    close(fd);
    return 0;
}
