/* SPDX-License-Identifier: MIT */
/*
 * gen.h — random registries for the client tests.
 *
 * The generator keeps its own plain copy of everything it publishes, so a
 * test can compute the expected answer to any query by brute force from
 * that copy and compare it with what libdiscshm returns.
 */
#ifndef DISC_TEST_CLIENT_GEN_H
#define DISC_TEST_CLIENT_GEN_H

#include <stdint.h>

#include "discshm.h"
#include "segwriter.h"

#define GEN_TAGS_MAX 4
#define GEN_EPS_MAX  6

struct gen_inst {
    char id[DISC_ID_LEN + 1];
    char service[32];
    int group;        /* service names are "g<group>.svc<nnn>" */
    char version[24]; /* "maj.min.patch", or "maj.min" when patch is 0 */
    int vmaj, vmin, vpatch;
    char host[16];
    char az[16];
    char address[32];
    uint32_t weight;
    uint8_t health;
    int n_tags;
    char tag_key[GEN_TAGS_MAX][16];
    char tag_val[GEN_TAGS_MAX][16];
    int n_eps;
    char ep[GEN_EPS_MAX][24];
    char ep_req[GEN_EPS_MAX][48];
    char ep_resp[GEN_EPS_MAX][48];
    uint32_t ep_mean[GEN_EPS_MAX], ep_p95[GEN_EPS_MAX];
};

struct gen_reg {
    struct gen_inst *inst;
    int n;
    int n_services;
};

/* Deterministic 64-bit PRNG (xorshift64*). */
uint64_t gen_rand(uint64_t *state);

/* A textual UUID made from the PRNG. */
void gen_uuid(uint64_t *state, char out[DISC_ID_LEN + 1]);

/* n_services services in 10 groups, 1..max_inst instances each, random
 * versions / hosts / azs / tags / endpoints / health / weights. */
void gen_build(struct gen_reg *g, uint64_t seed, int n_services, int max_inst);
void gen_free(struct gen_reg *g);

/* segw_put every instance (after the ones already staged) and commit.
 * 0 or -errno. */
int gen_publish(struct seg_writer *w, const struct gen_reg *g);

/* Put one instance (no commit). */
int gen_put(struct seg_writer *w, const struct gen_inst *in);

/* A unique shm name for this test process: "t_client_<what>_<pid>". */
void gen_shm_name(char *out, size_t len, const char *what);

/* Size of a fixture's scratch buffer (copy-out lookups and views). */
#define GEN_BUF_BYTES (8u << 20)

/*
 * The common fixture of the client tests: a generated registry published
 * with the real segment writer in a fresh shm object, a reader on it, and a
 * scratch buffer of GEN_BUF_BYTES.
 */
struct gen_fixture {
    struct seg_writer *w;
    disc_handle *h;
    struct gen_reg g;
    char shm[64];
    void *buf;
};

/*
 * Fill fx: gen_shm_name(what), gen_build(seed, n_services, max_inst),
 * gen_publish, disc_open(open_flags). 0, or -errno with everything undone.
 */
int gen_fixture_open(struct gen_fixture *fx, const char *what, uint64_t seed, int n_services,
                     int max_inst, int open_flags);

/* Close the reader, remove the shm object, free the registry and buffer. */
void gen_fixture_close(struct gen_fixture *fx);

#endif
