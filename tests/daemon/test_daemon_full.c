/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_full.c — a registration is acknowledged only once it is
 * published (issue 14): with a 1 MiB segment, a pipelined burst of large
 * registrations overflows the arena. Every acknowledged registration must be
 * visible in the segment (at or below the generation its reply names), every
 * refused one must have got a segment_full error and be gone from the
 * daemon's registry too; nothing is dropped silently. Space freed by
 * deregistrations is used again.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_util.h"
#include "discd_proc.h"
#include "discshm.h"
#include "proc.h"

static struct discd_proc d;

static void teardown(void)
{
    dt_finish(&d);
}

TestSuite(full, .fini = teardown, .timeout = 120);

#define N_REG 160

/* A register request whose record takes ~9 KB (32 tags of ~255 bytes). */
static char *big_register(int i)
{
    json_t *tags = json_object();
    char val[256];
    memset(val, 'a' + i % 26, 250);
    val[250] = '\0';
    for (int t = 0; t < 32; t++) {
        char key[16];
        snprintf(key, sizeof(key), "k%02d", t);
        json_object_set_new(tags, key, json_string(val));
    }
    char addr[32];
    snprintf(addr, sizeof(addr), "10.0.%d.%d:80", i / 200, i % 200 + 1);
    json_t *req =
        json_pack("{s:s, s:i, s:{s:s, s:s, s:o}, s:{s:s}}", "op", "register", "seq", i, "instance",
                  "service", "bulk", "address", addr, "tags", tags, "check", "type", "none");
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    cr_assert_not_null(s);
    return s;
}

static bool visible(disc_handle *h, const char *id)
{
    static char buf[DISC_INSTANCE_BUF_MAX];
    struct disc_instance *in;
    return disc_lookup_id(h, id, buf, sizeof(buf), &in, NULL) == 0;
}

Test(full, every_acknowledged_registration_is_visible_and_refusals_say_why)
{
    dt_start(&d, "full",
             (char *const[]){"--segment-bytes", "1048576", "--max-segment-size", "1048576", NULL});
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    for (int i = 0; i < N_REG; i++) {
        char *line = big_register(i);
        cr_assert_eq(discd_conn_send(&c, line), 0);
        free(line);
    }
    disc_handle *h = dt_open_reader(&d);
    char(*ok_ids)[DISC_ID_LEN + 1] = calloc(N_REG, sizeof(*ok_ids));
    int n_ok = 0, n_full = 0;
    for (int i = 0; i < N_REG; i++) {
        char *reply = NULL;
        cr_assert_geq(discd_conn_reply(&c, &reply, 10000 * dt_slow(), 1), 0, "reply %d", i);
        json_t *j = json_loads(reply, 0, NULL);
        cr_assert_not_null(j, "%s", reply);
        cr_assert_eq(json_integer_value(json_object_get(j, "seq")), i, "replies out of order");
        if (dt_ok(j)) {
            const char *id = json_string_value(json_object_get(j, "id"));
            json_int_t gen = json_integer_value(json_object_get(j, "generation"));
            cr_assert_gt(gen, 0, "an acknowledgement without its generation: %s", reply);
            struct disc_status st;
            cr_assert_eq(disc_status(h, &st), 0);
            cr_assert_geq(st.generation, (uint64_t)gen, "acknowledged before published");
            cr_assert(visible(h, id), "acknowledged %s is not in the segment", id);
            snprintf(ok_ids[n_ok++], DISC_ID_LEN + 1, "%s", id);
        } else {
            cr_assert_str_eq(dt_err_code(j), "segment_full", "unexpected refusal: %s", reply);
            const char *msg =
                json_string_value(json_object_get(json_object_get(j, "error"), "message"));
            cr_assert(msg && strstr(msg, "segment is full") && strstr(msg, "nothing was kept"),
                      "%s", reply);
            n_full++;
        }
        json_decref(j);
        free(reply);
    }
    discd_conn_close(&c);
    cr_assert_gt(n_ok, 10, "the segment took only %d registrations", n_ok);
    cr_assert_gt(n_full, 0, "the burst did not fill a 1 MiB segment (%d ok)", n_ok);
    cr_assert_eq(n_ok + n_full, N_REG);

    /* The registry agrees with the segment: exactly the acknowledged ones. */
    json_t *q = dt_callf(&d, "{\"op\":\"query\",\"service\":\"bulk\"}");
    cr_assert(dt_ok(q));
    cr_assert_eq(json_array_size(json_object_get(q, "instances")), (size_t)n_ok,
                 "registry holds refused registrations");
    json_decref(q);
    cr_assert_eq(disc_count(h, "bulk"), n_ok);
    cr_assert_eq(dt_status_int(&d, "local_instances"), n_ok);
    json_t *st = dt_callf(&d, "{\"op\":\"status\"}");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "publisher"), "rejected")),
                 n_full, "status does not count the refusals");
    json_decref(st);

    /* Free half; the removals are acknowledged once invisible. */
    int freed = n_ok / 2;
    for (int i = 0; i < freed; i++) {
        json_t *r = dt_callf(&d, "{\"op\":\"deregister\",\"id\":\"%s\"}", ok_ids[i]);
        cr_assert(dt_ok(r), "deregister %d refused", i);
        json_t *pub = json_object_get(r, "published");
        if (!pub) /* published: the reply carries the generation */
            cr_assert(!visible(h, ok_ids[i]), "deregistered %s still visible", ok_ids[i]);
        json_decref(r);
    }
    /* Retired memory comes back after the grace period; then registrations
     * fit again. */
    int again = 0;
    long long deadline = proc_now_ms() + 5000LL * dt_slow();
    struct discd_conn c2;
    cr_assert_eq(discd_conn_open(&d, &c2), 0);
    while (again < 3 && proc_now_ms() < deadline) {
        char *line = big_register(N_REG + again);
        json_t *r = dt_call(&c2, line);
        free(line);
        cr_assert_not_null(r);
        if (dt_ok(r)) {
            cr_assert(visible(h, json_string_value(json_object_get(r, "id"))));
            again++;
        } else {
            cr_assert_str_eq(dt_err_code(r), "segment_full");
            proc_sleep_ms(200);
        }
        json_decref(r);
    }
    discd_conn_close(&c2);
    cr_assert_eq(again, 3, "freed space was not reused");
    for (int i = freed; i < n_ok; i++)
        cr_assert(visible(h, ok_ids[i]), "%s vanished", ok_ids[i]);
    disc_close(h);
    free(ok_ids);
}
