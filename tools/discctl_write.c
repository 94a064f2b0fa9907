/* SPDX-License-Identifier: MIT */
/*
 * discctl_write.c — the subcommands that change the registry through
 * discd's control socket: register and deregister.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "discctl.h"

/* Report a failed request: the daemon's own words when it gave any. */
static int request_failed(const struct ctl *ctl, disc_client *cl, const char *what, int rc)
{
    char msg[512];
    if (disc_client_error(cl, msg, sizeof(msg)) > 0)
        ctl_err(ctl, "%s: %s", what, msg);
    else
        ctl_err(ctl, "%s: %s", what, disc_client_strerror(rc));
    if (rc == -ENOENT)
        return EXIT_NOTFOUND;
    if (rc == -ENOTCONN || rc == -ETIMEDOUT || rc == -ECONNREFUSED)
        return EXIT_UNAVAILABLE;
    return EXIT_ERR;
}

/* How long register/deregister wait for their change to show in the segment. */
#define VISIBLE_WAIT_MS 5000

/*
 * Read-your-writes: wait until the segment's generation reaches the one
 * discd's reply named (disc_client_generation), with libdiscshm's futex wait.
 * discd replies only after publishing, so this normally returns at once; it
 * makes `discctl register ... && discctl get SERVICE` hold even for a reader
 * that looks at the segment through another path. Returns EXIT_OK, or
 * EXIT_UNAVAILABLE after printing why.
 */
static int wait_visible(const struct ctl *ctl, disc_client *cl, const char *what)
{
    uint64_t want = disc_client_generation(cl);
    if (want == 0) {
        ctl_err(ctl,
                "%s: done, but discd could not publish it yet (segment full); "
                "readers do not see it yet",
                what);
        return EXIT_UNAVAILABLE;
    }
    disc_handle *h = NULL;
    int ec = ctl_open(ctl, &h);
    if (ec)
        return ec;
    long long deadline = ctl_now_ms() + VISIBLE_WAIT_MS;
    struct disc_status st;
    int rc;
    for (;;) {
        if ((rc = disc_status(h, &st)) < 0 || st.generation >= want)
            break;
        long long left = deadline - ctl_now_ms();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        /* change_seq was read with the generation: a publish in between
         * makes the wait return at once. */
        uint32_t seen = st.change_seq;
        rc = disc_wait_change(h, &seen, (int)(left < 100 ? left : 100));
        if (rc < 0 && rc != -ETIMEDOUT)
            break;
    }
    disc_close(h);
    if (rc == 0 && st.generation >= want)
        return EXIT_OK;
    ctl_err(ctl, "%s: discd acknowledged generation %llu but the segment %s", what,
            (unsigned long long)want,
            rc == -ETIMEDOUT ? "did not reach it within 5 s" : disc_strerror(rc));
    return EXIT_UNAVAILABLE;
}

/* NAME[,request=T][,response=T][,mean_us=N][,p95_us=N] — edits spec. */
static int parse_endpoint(char *spec, struct disc_endpoint_desc *ep)
{
    memset(ep, 0, sizeof(*ep));
    char *save = NULL;
    char *part = strtok_r(spec, ",", &save);
    if (!part || strchr(part, '='))
        return -EINVAL;
    ep->name = part;
    while ((part = strtok_r(NULL, ",", &save))) {
        char *eq = strchr(part, '=');
        if (!eq)
            return -EINVAL;
        *eq++ = '\0';
        if (strcmp(part, "request") == 0)
            ep->request_type = eq;
        else if (strcmp(part, "response") == 0)
            ep->response_type = eq;
        else if (strcmp(part, "mean_us") == 0) {
            if (ctl_parse_u32(eq, 0, UINT32_MAX, &ep->mean_us) < 0)
                return -EINVAL;
        } else if (strcmp(part, "p95_us") == 0) {
            if (ctl_parse_u32(eq, 0, UINT32_MAX, &ep->p95_us) < 0)
                return -EINVAL;
        } else
            return -EINVAL;
    }
    return 0;
}

/*
 * discd went away: reconnect with backoff (0.1 s doubling to 2 s) and
 * re-attach the instance, until it works or a signal arrives. Prints the
 * new id if discd had lost the instance and it was registered again.
 * Returns 0 when attached again, 1 on a signal.
 */
static int hold_reconnect(const struct ctl *ctl, disc_client *cl, int sfd, char *id)
{
    ctl_err(ctl, "connection to discd lost; reconnecting to re-attach %s", id);
    int delay = 100;
    for (;;) {
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        int r = poll(&p, 1, delay);
        if (r > 0)
            return 1;
        int rc = disc_client_reconnect(cl);
        if (rc >= 0) {
            char now[DISC_ID_LEN + 1];
            if (disc_client_instance_id(cl, id, now) == 0 && strcmp(now, id) != 0) {
                ctl_err(ctl, "discd no longer had %s; registered again as %s", id, now);
                if (ctl->json)
                    ctl_print_json(json_pack("{s:s}", "id", now));
                else
                    printf("%s\n", now);
                fflush(stdout);
                memcpy(id, now, sizeof(now));
            } else {
                ctl_err(ctl, "re-attached %s", id);
            }
            return 0;
        }
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
}

/* Keep the session answered until SIGINT/SIGTERM; re-attach after a discd
 * restart. */
static int hold_session(const struct ctl *ctl, disc_client *cl, char *id)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return EXIT_ERR;
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        ctl_err(ctl, "signalfd: %s", strerror(errno));
        return EXIT_ERR;
    }
    for (;;) {
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN},
                              {.fd = disc_client_fd(cl), .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            close(sfd);
            return EXIT_ERR;
        }
        if (p[0].revents) { /* closing the connection removes the instance */
            close(sfd);
            return EXIT_OK;
        }
        if (p[1].revents && disc_client_process(cl) < 0 && hold_reconnect(ctl, cl, sfd, id) != 0) {
            close(sfd);
            return EXIT_OK; /* a signal while reconnecting */
        }
    }
}

int cmd_register(struct ctl *ctl, int argc, char **argv)
{
    struct disc_instance_desc d = {0};
    struct disc_check_desc c = {.type = DISC_CHECK_NONE};
    struct disc_tag tags[DISC_TAGS_MAX];
    struct disc_endpoint_desc eps[DISC_ENDPOINTS_MAX];
    bool hold = false, wait = true;

    static const char *const opts[] = {
        "--service",  "--address",          "--network", "--version",  "--host",
        "--az",       "--weight",           "--tag",     "--endpoint", "--check",
        "--interval", "--timeout",          "--misses",  "--ttl",      "--path",
        "--target",   "--deregister-after",
    };
    /* Allowed ranges of the numeric options, named in the error. */
    unsigned long lo = 0, hi = 0;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *v = NULL;
        int r = 0;
        size_t k;
        if (strcmp(opt, "--hold") == 0) {
            hold = true;
            continue;
        }
        if (strcmp(opt, "--no-wait") == 0) {
            wait = false;
            continue;
        }
        for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
            if ((r = ctl_opt(argc, argv, &i, opts[k], &v)) != 0)
                break;
        if (r < 0)
            return ctl_usage_error(ctl, "%s needs a value", opt);
        if (r == 0)
            return ctl_usage_error(ctl, "unexpected argument '%s'", opt);
        int bad = 0;
        switch (k) {
        case 0:
            d.service = v;
            break;
        case 1:
            d.address = v;
            break;
        case 2:
            if (strcmp(v, "tcp") != 0 && strcmp(v, "unix") != 0)
                return ctl_usage_error(ctl, "--network is tcp or unix, not '%s'", v);
            d.network = v;
            break;
        case 3:
            d.version = v;
            break;
        case 4:
            d.host = v;
            break;
        case 5:
            d.az = v;
            break;
        case 6:
            bad = ctl_parse_u32(v, lo = 1, hi = 10000, &d.weight);
            break;
        case 7: {
            char *eq = strchr(v, '=');
            if (!eq || eq == v)
                return ctl_usage_error(ctl, "--tag wants KEY=VALUE, not '%s'", v);
            if (d.n_tags == DISC_TAGS_MAX)
                return ctl_usage_error(ctl, "at most %d tags", DISC_TAGS_MAX);
            *eq = '\0';
            tags[d.n_tags++] = (struct disc_tag){v, eq + 1};
            break;
        }
        case 8:
            if (d.n_endpoints == DISC_ENDPOINTS_MAX)
                return ctl_usage_error(ctl, "at most %d endpoints", DISC_ENDPOINTS_MAX);
            if (parse_endpoint((char *)v, &eps[d.n_endpoints]) < 0)
                return ctl_usage_error(
                    ctl,
                    "bad --endpoint '%s' (NAME[,request=T][,response=T][,mean_us=N]"
                    "[,p95_us=N])",
                    opt);
            d.n_endpoints++;
            break;
        case 9: {
            static const char *const types[] = {"session", "tcp", "http", "ttl", "none"};
            size_t t;
            for (t = 0; t < 5 && strcmp(v, types[t]) != 0; t++)
                ;
            if (t == 5)
                return ctl_usage_error(ctl, "unknown check '%s' (none, session, tcp, http, ttl)",
                                       v);
            c.type = (enum disc_check_type)t;
            break;
        }
        case 10:
            bad = ctl_parse_u32(v, lo = 1, hi = 86400000, &c.interval_ms);
            break;
        case 11:
            bad = ctl_parse_u32(v, lo = 1, hi = 86400000, &c.timeout_ms);
            break;
        case 12:
            bad = ctl_parse_u32(v, lo = 1, hi = 1000, &c.misses);
            break;
        case 13:
            bad = ctl_parse_u32(v, lo = 1, hi = 86400000, &c.ttl_ms);
            break;
        case 14:
            c.path = v;
            break;
        case 15:
            c.target = v;
            break;
        default:
            bad = ctl_parse_u32(v, lo = 0, hi = 7ul * 86400000, &c.deregister_after_ms);
        }
        if (bad)
            return ctl_usage_error(ctl, "bad number for %s: '%s' (allowed: %lu..%lu)", opts[k], v,
                                   lo, hi);
    }
    if (!d.service || !d.address)
        return ctl_usage_error(ctl, "--service and --address are required");
    if (c.type == DISC_CHECK_SESSION && !hold)
        return ctl_usage_error(ctl, "--check session needs --hold (the session would end "
                                    "when discctl exits)");
    if (hold && c.type != DISC_CHECK_SESSION)
        return ctl_usage_error(ctl, "--hold only makes sense with --check session");
    if (c.type == DISC_CHECK_TTL && !c.ttl_ms)
        return ctl_usage_error(ctl, "--check ttl needs --ttl MS");
    d.tags = tags;
    d.endpoints = eps;

    disc_client *cl;
    int ec = ctl_connect(ctl, &cl, false);
    if (ec)
        return ec;
    char id[DISC_ID_LEN + 1];
    int rc = disc_client_register(cl, &d, &c, id);
    if (rc < 0) {
        ec = request_failed(ctl, cl, "register refused", rc);
        disc_client_close(cl);
        return ec;
    }
    uint64_t gen = disc_client_generation(cl);
    if (wait && (ec = wait_visible(ctl, cl, id)) != EXIT_OK) {
        disc_client_close(cl);
        return ec;
    }
    if (ctl->json)
        ctl_print_json(json_pack("{s:s, s:I}", "id", id, "generation", (json_int_t)gen));
    else
        printf("%s\n", id);
    fflush(stdout);
    ec = hold ? hold_session(ctl, cl, id) : EXIT_OK;
    disc_client_close(cl);
    return ec;
}

int cmd_deregister(struct ctl *ctl, int argc, char **argv)
{
    int n = 0;
    bool wait = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-wait") == 0) {
            wait = false;
            argv[i] = "--";
            continue;
        }
        if (argv[i][0] == '-' && strcmp(argv[i], "--") != 0)
            return ctl_usage_error(ctl, "unknown option '%s'", argv[i]);
        if (strcmp(argv[i], "--") != 0)
            n++;
    }
    if (n == 0)
        return ctl_usage_error(ctl, "which instance? (discctl deregister ID...)");
    disc_client *cl;
    int ec = ctl_connect(ctl, &cl, false);
    if (ec)
        return ec;
    int first = EXIT_OK;
    json_t *done = json_array();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            continue;
        int rc = disc_client_deregister(cl, argv[i]);
        if (rc < 0) {
            char what[128];
            snprintf(what, sizeof(what), "%.60s", argv[i]);
            int e = request_failed(ctl, cl, what, rc);
            if (first == EXIT_OK)
                first = e;
            if (e == EXIT_UNAVAILABLE)
                break;
            continue;
        }
        if (wait) {
            int e = wait_visible(ctl, cl, argv[i]);
            if (e != EXIT_OK) {
                if (first == EXIT_OK)
                    first = e;
                continue;
            }
        }
        json_array_append_new(done, json_string(argv[i]));
        if (!ctl->json)
            printf("%s deregistered\n", argv[i]);
    }
    if (ctl->json)
        ctl_print_json(json_pack("{s:o}", "deregistered", done));
    else
        json_decref(done);
    disc_client_close(cl);
    return first;
}
