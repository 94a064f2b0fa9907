/* SPDX-License-Identifier: MIT */
/*
 * resolve_and_connect.c — find an instance of a service with a filter and a
 * load-balancing picker, then connect to it. Copy and adapt.
 *
 *   resolve_and_connect [-r registry] [-p random|rr|hash] [-k key]
 *                       [-a az] [-m min_version] [-e endpoint] [-t key=value]...
 *                       [-c] SERVICE
 *
 *   -c   accept instances in any health state (default: in rotation, i.e.
 *        neither critical nor in maintenance)
 *
 * When the registry's data is stale (discd dead or stopped, cut off from
 * ZooKeeper, or restored from the file cache) it says so on stderr and still
 * uses the last known picture: failing would turn a discovery outage into
 * an outage of this service.
 *
 * Exit codes: 0 connected, 1 usage, 2 no matching instance, 3 registry
 * unavailable, 4 could not connect to any chosen instance.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "discshm.h"

#define CONNECT_TIMEOUT_MS 2000
#define MAX_ATTEMPTS       3

_Noreturn static void usage(void)
{
    fprintf(stderr, "usage: resolve_and_connect [-r registry] [-p random|rr|hash] [-k key]\n"
                    "       [-a az] [-m min_version] [-e endpoint] [-t key=value]... [-c] "
                    "SERVICE\n");
    exit(1);
}

/* Connect with a timeout; returns the connected fd or -1 (errno set). */
static int connect_timeout(int family, const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, sa, len) < 0) {
        if (errno != EINPROGRESS)
            goto fail;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, CONNECT_TIMEOUT_MS);
        if (n == 0)
            errno = ETIMEDOUT;
        if (n <= 0)
            goto fail;
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            errno = err;
            goto fail;
        }
    }
    return fd;
fail : {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}
}

/* "host:port" or "[v6]:port" */
static int connect_tcp(const char *address)
{
    char host[DISC_ADDRESS_MAX + 1];
    snprintf(host, sizeof(host), "%s", address);
    char *colon = strrchr(host, ':');
    if (!colon) {
        errno = EINVAL;
        return -1;
    }
    *colon = 0;
    const char *port = colon + 1, *name = host;
    if (host[0] == '[' && colon > host && colon[-1] == ']') {
        colon[-1] = 0;
        name = host + 1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    int rc = getaddrinfo(name, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "  cannot resolve %s: %s\n", address, gai_strerror(rc));
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = connect_timeout(ai->ai_family, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    return fd;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun.sun_path, path);
    return connect_timeout(AF_UNIX, (const struct sockaddr *)&sun, sizeof(sun));
}

static const char *health_name(unsigned h)
{
    static const char *const names[] = {"unknown", "passing", "warning", "critical", "maintenance"};
    return h < 5 ? names[h] : "?";
}

int main(int argc, char **argv)
{
    const char *registry = NULL, *policy_name = "rr", *key = NULL;
    struct disc_filter f;
    disc_filter_init(&f);
    f.health_mask = DISC_HEALTH_NOT_CRITICAL;
    int opt;
    while ((opt = getopt(argc, argv, "r:p:k:a:m:e:t:c")) != -1) {
        switch (opt) {
        case 'r':
            registry = optarg;
            break;
        case 'p':
            policy_name = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'a':
            f.az = optarg;
            break;
        case 'm':
            f.min_version = optarg;
            break;
        case 'e':
            f.endpoint = optarg;
            break;
        case 't': {
            char *eq = strchr(optarg, '=');
            if (eq)
                *eq = 0;
            int rc = disc_filter_add_tag(&f, optarg, eq ? eq + 1 : NULL);
            if (rc < 0) {
                fprintf(stderr, "bad tag %s: %s\n", optarg, disc_strerror(rc));
                return 1;
            }
            break;
        }
        case 'c':
            f.health_mask = DISC_HEALTH_MASK_ALL; /* 0 would mean "in rotation" to a picker */
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1)
        usage();
    f.service = argv[optind];

    enum disc_pick_policy policy;
    if (strcmp(policy_name, "random") == 0)
        policy = DISC_PICK_RANDOM;
    else if (strcmp(policy_name, "rr") == 0)
        policy = DISC_PICK_ROUND_ROBIN;
    else if (strcmp(policy_name, "hash") == 0 && key)
        policy = DISC_PICK_HASH;
    else
        usage(); /* hash needs -k */
    int rc = disc_filter_check(&f);
    if (rc < 0) {
        fprintf(stderr, "bad filter: %s\n", disc_strerror(rc));
        return 1;
    }

    disc_handle *h;
    if ((rc = disc_open(registry, 0, &h)) < 0) {
        fprintf(stderr, "registry %s unavailable: %s (is discd running?)\n",
                registry ? registry : "(default)", disc_strerror(rc));
        return 3;
    }
    /* disc_stale is cheap enough to call before every pick. */
    int stale = disc_stale(h);
    struct disc_status st;
    if (stale > 0 && disc_status(h, &st) == 0)
        fprintf(stderr, "warning: registry data is stale (%s%s); using the last known picture\n",
                disc_status_reason_str(st.degraded_reason),
                stale & DISC_STALE_FROM_CACHE ? ", from the file cache" : "");

    disc_picker *picker;
    if ((rc = disc_picker_create(policy, (uint64_t)getpid() * 0x9e3779b97f4a7c15ull, 0, &picker)) <
        0) {
        fprintf(stderr, "picker: %s\n", disc_strerror(rc));
        disc_close(h);
        return 1;
    }

    /* A hash pick is deterministic: retrying would choose the same one. */
    int attempts = policy == DISC_PICK_HASH ? 1 : MAX_ATTEMPTS, status = 4;
    static unsigned char buf[DISC_INSTANCE_BUF_MAX]; /* always holds one instance */
    for (int a = 0; a < attempts; a++) {
        struct disc_instance *in;
        rc = disc_pick(h, &f, picker, key, key ? strlen(key) : 0, buf, sizeof(buf), &in, NULL);
        if (rc == -ENOENT) {
            int n = disc_count(h, f.service);
            if (n > 0)
                printf("%s: %d instance(s), none matches the filter\n", f.service, n);
            else
                printf("%s: no such service\n", f.service);
            status = 2;
            break;
        }
        if (rc < 0) {
            fprintf(stderr, "pick: %s\n", disc_strerror(rc));
            status = 3;
            break;
        }
        printf("picked %s (%s) %s version %s az %s weight %u health %s\n", in->id, policy_name,
               in->address, in->version, in->az[0] ? in->az : "-", in->weight,
               health_name(in->health));
        int fd =
            in->addr_kind == DISC_ADDR_UNIX ? connect_unix(in->address) : connect_tcp(in->address);
        if (fd >= 0) {
            printf("connected to %s\n", in->address);
            /* ... talk to the service here ... */
            close(fd);
            status = 0;
            break;
        }
        printf("cannot connect to %s: %s\n", in->address, strerror(errno));
    }
    disc_picker_destroy(picker);
    disc_close(h);
    return status;
}
