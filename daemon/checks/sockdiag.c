/* SPDX-License-Identifier: MIT */
/*
 * sockdiag.c — the listener listing behind sockdiag.h.
 *
 * A refresh sends one SOCK_DIAG_BY_FAMILY dump request per address family
 * (struct inet_diag_req_v2: protocol TCP, states 1 << TCP_LISTEN, no
 * extensions) on a NETLINK_SOCK_DIAG socket and keeps, for every listener,
 * its local address and port, the interface it is bound to (idiag_if), the
 * accept queue (idiag_rqueue: sk_ack_backlog) and the backlog
 * (idiag_wqueue: sk_max_ack_backlog) and, for IPv6, INET_DIAG_SKV6ONLY
 * (which the kernel sends for every listening IPv6 socket). The kernel
 * drops a SYN when sk_ack_backlog > sk_max_ack_backlog
 * (sk_acceptq_is_full), so that is "full" here too.
 *
 * There is no library for this in Debian that fits (libmnl would only
 * replace the few lines of message walking below; iproute2's libnetlink
 * is not a shared library), so it is written against the kernel's uapi
 * headers.
 *
 * The local addresses come from getifaddrs(3), refreshed at most once a
 * second: an address added to an interface is used within a second (until
 * then its targets take the connect path, which is never wrong).
 */
#include "sockdiag.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define SD_BUF        (64 * 1024)
#define SD_ADDRS_MS   1000u
#define SD_TCP_LISTEN 10 /* TCP_LISTEN in the kernel's enum */

struct sd_listener {
    uint16_t port; /* host order */
    uint8_t family;
    uint8_t v6only;
    uint32_t ifindex; /* SO_BINDTODEVICE, 0 none */
    uint32_t rqueue, wqueue;
    uint8_t addr[16]; /* IPv4: the first 4 bytes */
};

struct sd_addr {
    uint8_t family;
    uint8_t addr[16];
};

struct sockdiag {
    int fd;
    uint32_t seq;
    bool valid; /* the last refresh succeeded */
    struct sd_listener *lis;
    size_t n, cap;
    struct sd_addr *addrs;
    size_t n_addrs;
    uint64_t addrs_ms;
    bool addrs_valid;
    unsigned char *buf;
};

bool sockdiag_err_permanent(int err)
{
    if (err < 0)
        err = -err;
    return err == EPROTONOSUPPORT || err == EPERM || err == EACCES || err == EAFNOSUPPORT ||
           err == ENOENT || err == EOPNOTSUPP;
}

struct sockdiag *sockdiag_open(void)
{
    struct sockdiag *sd = calloc(1, sizeof(*sd));
    if (!sd)
        return NULL;
    sd->buf = malloc(SD_BUF);
    sd->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (!sd->buf || sd->fd < 0) {
        int err = sd->buf ? errno : ENOMEM;
        sockdiag_close(sd);
        errno = err;
        return NULL;
    }
    /* A backstop: the kernel answers a dump synchronously, but the checker
     * thread must never hang on it. */
    struct timeval tv = {.tv_sec = 1};
    setsockopt(sd->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(sd->fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
        int err = errno;
        sockdiag_close(sd);
        errno = err;
        return NULL;
    }
    return sd;
}

void sockdiag_close(struct sockdiag *sd)
{
    if (!sd)
        return;
    if (sd->fd >= 0)
        close(sd->fd);
    free(sd->buf);
    free(sd->lis);
    free(sd->addrs);
    free(sd);
}

static int add_listener(struct sockdiag *sd, const struct sd_listener *l)
{
    if (sd->n == sd->cap) {
        size_t cap = sd->cap ? sd->cap * 2 : 256;
        struct sd_listener *n = realloc(sd->lis, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        sd->lis = n;
        sd->cap = cap;
    }
    sd->lis[sd->n++] = *l;
    return 0;
}

/* One message of the dump. */
static int take_msg(struct sockdiag *sd, const struct nlmsghdr *nlh)
{
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
        return 0;
    const struct inet_diag_msg *m = NLMSG_DATA(nlh);
    if (m->idiag_state != SD_TCP_LISTEN ||
        (m->idiag_family != AF_INET && m->idiag_family != AF_INET6))
        return 0;
    struct sd_listener l = {.port = ntohs(m->id.idiag_sport),
                            .family = m->idiag_family,
                            .ifindex = m->id.idiag_if,
                            .rqueue = m->idiag_rqueue,
                            .wqueue = m->idiag_wqueue};
    memcpy(l.addr, m->id.idiag_src, m->idiag_family == AF_INET ? 4 : 16);
    int len = (int)(nlh->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
    for (const struct rtattr *a = (const struct rtattr *)(m + 1); RTA_OK(a, len);
         a = RTA_NEXT(a, len))
        if (a->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(a) >= 1)
            l.v6only = *(const uint8_t *)RTA_DATA(a);
    return add_listener(sd, &l);
}

static int dump_family(struct sockdiag *sd, int family)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg = {
        .nlh = {.nlmsg_len = sizeof(msg),
                .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
                .nlmsg_seq = ++sd->seq},
        .req = {.sdiag_family = (uint8_t)family,
                .sdiag_protocol = IPPROTO_TCP,
                .idiag_states = 1u << SD_TCP_LISTEN},
    };
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(sd->fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        return -errno;
    for (;;) {
        struct sockaddr_nl from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(sd->fd, sd->buf, SD_BUF, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        }
        if (n == 0)
            return -EIO;
        if (fromlen < sizeof(from) || from.nl_family != AF_NETLINK || from.nl_pid != 0)
            continue; /* not from the kernel: another process's (root's) message */
        int left = (int)n;
        for (const struct nlmsghdr *nlh = (const struct nlmsghdr *)sd->buf; NLMSG_OK(nlh, left);
             nlh = NLMSG_NEXT(nlh, left)) {
            if (nlh->nlmsg_seq != sd->seq)
                continue; /* left over from an earlier, abandoned dump */
            if (nlh->nlmsg_type == NLMSG_DONE) {
                int err = 0;
                if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
                    memcpy(&err, NLMSG_DATA(nlh), sizeof(int));
                return err < 0 ? err : 0;
            }
            if (nlh->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(nlh);
                if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
                    return -EIO;
                return e->error < 0 ? e->error : -EIO;
            }
            if (nlh->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
                int rc = take_msg(sd, nlh);
                if (rc < 0)
                    return rc;
            }
        }
    }
}

static int cmp_port(const void *a, const void *b)
{
    const struct sd_listener *x = a, *y = b;
    return (int)x->port - (int)y->port;
}

static void refresh_addrs(struct sockdiag *sd, uint64_t now_ms)
{
    if (sd->addrs_valid && now_ms - sd->addrs_ms < SD_ADDRS_MS)
        return;
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) < 0) {
        sd->addrs_valid = false; /* every non-loopback target takes the connect path */
        return;
    }
    size_t n = 0;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
        n++;
    struct sd_addr *a = calloc(n ? n : 1, sizeof(*a));
    if (!a) {
        freeifaddrs(ifa);
        sd->addrs_valid = false;
        return;
    }
    size_t k = 0;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        if (i->ifa_addr->sa_family == AF_INET) {
            a[k].family = AF_INET;
            memcpy(a[k++].addr, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, 4);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            a[k].family = AF_INET6;
            memcpy(a[k++].addr, &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, 16);
        }
    }
    freeifaddrs(ifa);
    free(sd->addrs);
    sd->addrs = a;
    sd->n_addrs = k;
    sd->addrs_ms = now_ms;
    sd->addrs_valid = true;
}

int sockdiag_refresh(struct sockdiag *sd, uint64_t now_ms)
{
    sd->valid = false;
    sd->n = 0;
    int rc = dump_family(sd, AF_INET);
    if (rc == 0)
        rc = dump_family(sd, AF_INET6);
    if (rc < 0)
        return rc;
    qsort(sd->lis, sd->n, sizeof(*sd->lis), cmp_port);
    refresh_addrs(sd, now_ms);
    sd->valid = true;
    return 0;
}

size_t sockdiag_listeners(const struct sockdiag *sd)
{
    return sd && sd->valid ? sd->n : 0;
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const uint8_t zero16[16];

/* The target as (family, address, port), a v4-mapped IPv6 address as the
 * IPv4 address it stands for. false for other families. */
static bool normalize(const struct sockaddr *sa, int *family, uint8_t addr[16], uint16_t *port)
{
    memset(addr, 0, 16);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)sa;
        *family = AF_INET;
        memcpy(addr, &s->sin_addr, 4);
        *port = ntohs(s->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)sa;
        *port = ntohs(s->sin6_port);
        if (memcmp(&s->sin6_addr, v4mapped_prefix, 12) == 0) {
            *family = AF_INET;
            memcpy(addr, (const uint8_t *)&s->sin6_addr + 12, 4);
        } else {
            *family = AF_INET6;
            memcpy(addr, &s->sin6_addr, 16);
        }
        return true;
    }
    return false;
}

static bool local_addr(const struct sockdiag *sd, int family, const uint8_t addr[16])
{
    static const uint8_t loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (family == AF_INET && addr[0] == 127)
        return true; /* 127.0.0.0/8 is routed to lo */
    if (family == AF_INET6 && memcmp(addr, loop6, 16) == 0)
        return true;
    if (!sd->addrs_valid)
        return false;
    size_t alen = family == AF_INET ? 4 : 16;
    if (memcmp(addr, zero16, alen) == 0)
        return false; /* the unspecified address is not an interface's */
    for (size_t i = 0; i < sd->n_addrs; i++)
        if (sd->addrs[i].family == family && memcmp(sd->addrs[i].addr, addr, alen) == 0)
            return true;
    return false;
}

bool sockdiag_is_local(const struct sockdiag *sd, const struct sockaddr *sa)
{
    int family;
    uint8_t addr[16];
    uint16_t port;
    return sd && normalize(sa, &family, addr, &port) && local_addr(sd, family, addr);
}

static void fmt_listener(const struct sd_listener *l, char *out, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";
    inet_ntop(l->family, l->addr, a, sizeof(a));
    snprintf(out, len, l->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, l->port);
}

enum sockdiag_verdict sockdiag_judge(const struct sockdiag *sd, const struct sockaddr *target,
                                     char *why, size_t whylen)
{
    int family;
    uint8_t a[16];
    uint16_t port;
    if (!sd || !sd->valid || !normalize(target, &family, a, &port) || !local_addr(sd, family, a))
        return SD_CONNECT;
    /* First listener on the port (the listing is sorted by port). */
    size_t lo = 0, hi = sd->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sd->lis[mid].port < port)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* The kernel looks for a listener bound to the exact address first and
     * only then for a wildcard one (inet_lhash2_lookup); within the group
     * it finds, SO_REUSEPORT spreads connections over every member. */
    const struct sd_listener *exact_full = NULL, *wild_full = NULL;
    unsigned exact = 0, exact_ok = 0, wild = 0, wild_ok = 0;
    for (size_t i = lo; i < sd->n && sd->lis[i].port == port; i++) {
        const struct sd_listener *l = &sd->lis[i];
        bool is_exact = false, is_wild = false;
        if (family == AF_INET && l->family == AF_INET) {
            is_exact = memcmp(l->addr, a, 4) == 0;
            is_wild = memcmp(l->addr, zero16, 4) == 0;
        } else if (family == AF_INET && l->family == AF_INET6) {
            /* an IPv6 socket takes IPv4 connections on its v4-mapped
             * address, or on :: unless IPV6_V6ONLY */
            is_exact = memcmp(l->addr, v4mapped_prefix, 12) == 0 && memcmp(l->addr + 12, a, 4) == 0;
            is_wild = memcmp(l->addr, zero16, 16) == 0 && !l->v6only;
        } else if (family == AF_INET6 && l->family == AF_INET6) {
            is_exact = memcmp(l->addr, a, 16) == 0;
            is_wild = memcmp(l->addr, zero16, 16) == 0;
        }
        if (!is_exact && !is_wild)
            continue;
        if (l->ifindex)
            return SD_CONNECT; /* bound to a device: whether it takes the
                                * connection depends on the route; ask */
        bool ok = l->rqueue <= l->wqueue;
        if (is_exact) {
            exact++;
            exact_ok += ok;
            if (!ok)
                exact_full = l;
        } else {
            wild++;
            wild_ok += ok;
            if (!ok)
                wild_full = l;
        }
    }
    const struct sd_listener *full = exact ? exact_full : wild_full;
    unsigned n = exact ? exact : wild, ok = exact ? exact_ok : wild_ok;
    char t[INET6_ADDRSTRLEN] = "?";
    inet_ntop(family, a, t, sizeof(t));
    if (n == 0) {
        if (why)
            snprintf(why, whylen, "tcp listener: nothing listens on %s%s%s:%u (sock_diag)",
                     family == AF_INET6 ? "[" : "", t, family == AF_INET6 ? "]" : "", port);
        return SD_NO_LISTENER;
    }
    if (ok == 0) {
        if (why) {
            char l[INET6_ADDRSTRLEN + 16];
            fmt_listener(full, l, sizeof(l));
            snprintf(why, whylen,
                     "tcp listener: the accept queue of %s is full (%u waiting, backlog %u): "
                     "connects time out (sock_diag)",
                     l, full->rqueue, full->wqueue);
        }
        return SD_QUEUE_FULL;
    }
    return SD_PASS;
}
