/* SPDX-License-Identifier: MIT */
/*
 * fuzz_image.h — turn fuzzer bytes into a file-cache image file.
 *
 * The bytes are the image. So that the fuzzer spends its time on the
 * records rather than on the whole-file checksum, the harness pads the
 * input to the smallest size a reader accepts (8 KiB, zero-filled) and
 * then fixes the fields that must agree with the file itself:
 * segment_size, image_bytes and image_checksum. Everything else (magic,
 * arena bounds, root, every record) is the fuzzer's. The file is a memfd
 * reached through /proc/self/fd, so no disk is touched.
 */
#ifndef DISC_FUZZ_IMAGE_H
#define DISC_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "layout.h"

/* Write the image to a new memfd; returns its fd (or -1) and its path. */
static inline int fuzz_image_file(const uint8_t *data, size_t size, char *path, size_t plen)
{
    size_t len = size < 8192 ? 8192 : size;
    len = (len + 7) & ~(size_t)7;
    if (len > (64u << 20))
        return -1;
    unsigned char *b = calloc(1, len);
    if (!b)
        return -1;
    memcpy(b, data, size);
    struct disc_hdr *h = (struct disc_hdr *)b;
    h->segment_size = len;
    h->image_bytes = len;
    h->image_checksum = 0;
    h->image_checksum = disc_checksum(b, (uint32_t)len, offsetof(struct disc_hdr, image_checksum));
    int fd = memfd_create("fuzz-image", MFD_CLOEXEC);
    if (fd >= 0 && write(fd, b, len) != (ssize_t)len) {
        close(fd);
        fd = -1;
    }
    free(b);
    if (fd >= 0)
        snprintf(path, plen, "/proc/self/fd/%d", fd);
    return fd;
}

#endif /* DISC_FUZZ_IMAGE_H */
