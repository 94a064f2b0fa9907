/* SPDX-License-Identifier: MIT */
/*
 * fuzz_image.h — turn fuzzer bytes into a file-cache image file.
 *
 * The bytes are the image. So that the fuzzer spends its time on the
 * records rather than on the whole-file checksum, the harness pads the
 * input to the smallest size a reader accepts (8 KiB, zero-filled) and
 * then fixes the fields that must agree with the file itself:
 * segment_size, image_bytes and image_checksum (the kind its features
 * bit DISC_FEAT_CHECKSUM_WORD names, so both kinds are reached).
 * Everything else (magic, features, arena bounds, root, every record) is
 * the fuzzer's. The file is written
 * to a private directory made once per process (a 0755 directory inside a
 * mkdtemp one, removed at exit), because the readers' trust checks
 * (docs/DESIGN.md, "Threat model") refuse anything else: a memfd reached
 * through /proc/self/fd is a symbolic link, which O_NOFOLLOW rejects, so
 * until this was changed no input got past disc_open_file.
 */
#ifndef DISC_FUZZ_IMAGE_H
#define DISC_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "layout.h"

/* Write the image to a new memfd; returns its fd (or -1) and its path. */
static char fuzz_image_top_[32], fuzz_image_dir_[40], fuzz_image_path_[48];

static void fuzz_image_cleanup_(void)
{
    unlink(fuzz_image_path_);
    rmdir(fuzz_image_dir_);
    rmdir(fuzz_image_top_);
}

/* The image's directory, made on first use: NULL if it cannot be. */
static inline const char *fuzz_image_dir(void)
{
    if (!fuzz_image_dir_[0]) {
        snprintf(fuzz_image_top_, sizeof(fuzz_image_top_), "/tmp/disc-fuzz-XXXXXX");
        if (!mkdtemp(fuzz_image_top_))
            return NULL;
        snprintf(fuzz_image_dir_, sizeof(fuzz_image_dir_), "%s/d", fuzz_image_top_);
        snprintf(fuzz_image_path_, sizeof(fuzz_image_path_), "%s/image", fuzz_image_dir_);
        if (mkdir(fuzz_image_dir_, 0755) < 0 || chmod(fuzz_image_dir_, 0755) < 0) {
            rmdir(fuzz_image_top_);
            fuzz_image_dir_[0] = 0;
            return NULL;
        }
        atexit(fuzz_image_cleanup_);
    }
    return fuzz_image_dir_;
}

/* Write the image for `data` and return an fd on it (the caller closes
 * it) with its path in `path`, or -1. */
static inline int fuzz_image_file(const uint8_t *data, size_t size, char *path, size_t plen)
{
    size_t len = size < 8192 ? 8192 : size;
    len = (len + 7) & ~(size_t)7;
    if (len > (64u << 20) || !fuzz_image_dir())
        return -1;
    unsigned char *b = calloc(1, len);
    if (!b)
        return -1;
    memcpy(b, data, size);
    struct disc_hdr *h = (struct disc_hdr *)b;
    h->segment_size = len;
    h->image_bytes = len;
    h->image_checksum = 0;
    /* the checksum the header's features name (the reader picks the same) */
    h->image_checksum =
        (h->features & DISC_FEAT_CHECKSUM_WORD)
            ? disc_checksum(b, (uint32_t)len, offsetof(struct disc_hdr, image_checksum))
            : disc_checksum_fnv1a(b, (uint32_t)len, offsetof(struct disc_hdr, image_checksum));
    int fd = open(fuzz_image_path_, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0 && (fchmod(fd, 0644) < 0 || write(fd, b, len) != (ssize_t)len)) {
        close(fd);
        fd = -1;
    }
    free(b);
    if (fd >= 0)
        snprintf(path, plen, "%s", fuzz_image_path_);
    return fd;
}

#endif /* DISC_FUZZ_IMAGE_H */
