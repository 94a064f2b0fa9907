/* SPDX-License-Identifier: MIT */
/*
 * criterion_tsan_arena.c — lets Criterion 2.4 start under ThreadSanitizer.
 *
 * Linked into every test executable of a -DDISC_SANITIZE=thread build only.
 *
 * Why: Criterion's sandbox (BoxFort) maps its inheritable arena at a random
 * 16 MiB-aligned address 0x200000000000 + (rand_r() & 0x3fffff) * 16 MiB,
 * probes that the range is unmapped, and gives up after 10 tries with
 * "Could not initialize inheritable arena" (upstream Criterion issue #274).
 * Under TSan nearly all of that range is TSan shadow, metadata or reserved
 * (PROT_NONE), so every test binary aborts before running a test. The one
 * application range TSan leaves there is the PIE window
 * [0x550000000000, 0x568000000000). PIE executables load at most 2^40 bytes
 * above 0x555555554000 (vm.mmap_rnd_bits=28, the value TSan itself needs),
 * i.e. below 0x565600000000, so [0x566000000000, 0x567000000000) is free in
 * the test process and in the re-executed worker that maps the arena at the
 * same address.
 *
 * How: this executable defines rand_r(). libcriterion imports rand_r, so the
 * dynamic linker binds its calls to this definition. Calls returning into
 * libcriterion's mapping get a value that lands in the free window; every
 * other caller (tests use rand_r too) gets glibc's rand_r unchanged, at the
 * cost of one range check.
 */
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* (0x566000000000 - 0x200000000000) / 16 MiB, and 4096 slots = 64 GiB. */
#define ARENA_SLOT_FIRST 0x366000u
#define ARENA_SLOT_MASK  0xfffu

typedef int (*rand_r_fn)(unsigned int *);

/* Set once before main (before any test thread), read-only afterwards. */
static rand_r_fn libc_rand_r;
static uintptr_t criterion_lo, criterion_hi; /* libcriterion's mapped range */

static int find_criterion(struct dl_phdr_info *info, size_t size, void *unused)
{
    (void)size;
    (void)unused;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, "libcriterion") == NULL)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        uintptr_t hi = lo + ph->p_memsz;
        if (criterion_lo == 0 || lo < criterion_lo)
            criterion_lo = lo;
        if (hi > criterion_hi)
            criterion_hi = hi;
    }
    return 1;
}

__attribute__((constructor)) static void criterion_tsan_arena_init(void)
{
    libc_rand_r = (rand_r_fn)dlsym(RTLD_NEXT, "rand_r");
    dl_iterate_phdr(find_criterion, NULL);
}

int rand_r(unsigned int *seedp)
{
    int value = libc_rand_r(seedp);
    uintptr_t caller = (uintptr_t)__builtin_return_address(0);
    if (caller >= criterion_lo && caller < criterion_hi)
        return (int)(ARENA_SLOT_FIRST + ((unsigned int)value & ARENA_SLOT_MASK));
    return value;
}
