/* SPDX-License-Identifier: MIT */
/*
 * zk_server.c — start/stop real ZooKeeper servers for tests (see zk_server.h).
 */
#include "zk_server.h"
#include "rm_tree.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ZK_DEFAULT_JAVA "/usr/bin/java"
/* zookeeper.jar's manifest pulls its own dependencies (netty, jute, slf4j-api,
 * ...); slf4j-simple is the logging backend so the server logs to our file. */
#define ZK_DEFAULT_CLASSPATH "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
#define ZK_MAIN_CLASS        "org.apache.zookeeper.server.quorum.QuorumPeerMain"
#define ZK_PROBE_TIMEOUT_MS  500
#define ZK_POLL_MS           50
#define ZK_START_ATTEMPTS    3

/* Safety net: every JVM this process started and has not reaped yet. */
#define ZK_MAX_TRACKED 64
static pid_t tracked[ZK_MAX_TRACKED];
static bool atexit_installed;

static void kill_tracked_at_exit(void)
{
    for (int i = 0; i < ZK_MAX_TRACKED; i++) {
        if (tracked[i] > 0) {
            kill(tracked[i], SIGCONT);
            kill(tracked[i], SIGKILL);
            waitpid(tracked[i], NULL, 0);
            tracked[i] = 0;
        }
    }
}

static void track(pid_t pid)
{
    if (!atexit_installed) {
        atexit(kill_tracked_at_exit);
        atexit_installed = true;
    }
    for (int i = 0; i < ZK_MAX_TRACKED; i++) {
        if (tracked[i] == 0) {
            tracked[i] = pid;
            return;
        }
    }
}

static void untrack(pid_t pid)
{
    for (int i = 0; i < ZK_MAX_TRACKED; i++) {
        if (tracked[i] == pid) {
            tracked[i] = 0;
        }
    }
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Reserve n distinct free loopback ports: keep every probe socket bound until
 * all are chosen so the kernel cannot hand out the same port twice. */
static int pick_ports(int *ports, int n)
{
    int fds[3 * ZK_MAX_NODES];
    int rc = 0, opened = 0;
    for (; opened < n; opened++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            break;
        }
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t sl = sizeof(sa);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
            rc = -errno;
            close(fd);
            break;
        }
        fds[opened] = fd;
        ports[opened] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < opened; i++) {
        close(fds[i]);
    }
    return rc;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return -errno;
    }
    int rc = fputs(text, f) < 0 ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

static int write_configs(struct zk_cluster *c)
{
    char servers[1024] = "";
    if (c->n > 1) {
        size_t off = 0;
        for (int i = 0; i < c->n; i++) {
            off += (size_t)snprintf(servers + off, sizeof(servers) - off,
                                    "server.%d=127.0.0.1:%d:%d\n", c->nodes[i].myid,
                                    c->nodes[i].peer_port, c->nodes[i].election_port);
        }
    }
    size_t coff = 0;
    c->connect[0] = '\0';
    for (int i = 0; i < c->n; i++) {
        struct zk_node *z = &c->nodes[i];
        char data_dir[ZK_PATH_LEN + 8], cfg[2048], myid[16];
        snprintf(data_dir, sizeof(data_dir), "%s/data", z->dir);
        if (mkdir(z->dir, 0700) != 0 && errno != EEXIST) {
            return -errno;
        }
        if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
            return -errno;
        }
        /* tickTime 500: sessions may be 1..30 s; cnxTimeout 1000 speeds up a
         * re-election when a peer is dead; forceSync=no and a small preAllocSize
         * keep the disk cost of a test server negligible. */
        int cl = snprintf(
            cfg, sizeof(cfg),
            "tickTime=500\ninitLimit=20\nsyncLimit=6\n"
            "minSessionTimeout=1000\nmaxSessionTimeout=30000\n"
            "dataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr,cons\n"
            "maxClientCnxns=0\nextendedTypesEnabled=true\nforceSync=no\npreAllocSize=4096\n"
            "cnxTimeout=1000\n%s",
            data_dir, z->client_port, servers);
        if (cl < 0 || (size_t)cl >= sizeof(cfg)) {
            return -ENAMETOOLONG;
        }
        int rc = write_file(z->cfg_path, cfg);
        if (rc != 0) {
            return rc;
        }
        if (c->n > 1) {
            char myid_path[ZK_PATH_LEN + 16];
            snprintf(myid_path, sizeof(myid_path), "%s/myid", data_dir);
            snprintf(myid, sizeof(myid), "%d\n", z->myid);
            rc = write_file(myid_path, myid);
            if (rc != 0) {
                return rc;
            }
        }
        coff += (size_t)snprintf(c->connect + coff, sizeof(c->connect) - coff, "%s127.0.0.1:%d",
                                 i ? "," : "", z->client_port);
    }
    return 0;
}

int zk_node_start(struct zk_cluster *c, int i)
{
    if (i < 0 || i >= c->n) {
        return -EINVAL;
    }
    struct zk_node *z = &c->nodes[i];
    if (z->pid > 0) {
        return -EALREADY;
    }
    const char *java = getenv("DISC_ZK_JAVA");
    const char *cp = getenv("DISC_ZK_CLASSPATH");
    if (!java || !*java) {
        java = ZK_DEFAULT_JAVA;
    }
    if (!cp || !*cp) {
        cp = ZK_DEFAULT_CLASSPATH;
    }
    if (access(java, X_OK) != 0) {
        return -ENOENT;
    }
    int log_fd = open(z->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        return -errno;
    }
    /* heap: 128 MiB unless $DISC_ZK_HEAP says otherwise (benchmarks with 1M nodes) */
    const char *heap = getenv("DISC_ZK_HEAP");
    char xmx[48];
    snprintf(xmx, sizeof(xmx), "-Xmx%s", heap && *heap ? heap : "128m");
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(log_fd);
        return -e;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
        }
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        if (chdir(z->dir) != 0) {
            _exit(127);
        }
        char *const argv[] = {
            (char *)java,
            xmx,
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:-UsePerfData",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dznode.container.checkIntervalMs=1000",
            "-cp",
            (char *)cp,
            ZK_MAIN_CLASS,
            z->cfg_path,
            NULL,
        };
        execv(java, argv);
        _exit(127);
    }
    close(log_fd);
    z->pid = pid;
    z->paused = false;
    track(pid);
    return 0;
}

static void reaped(struct zk_node *z)
{
    untrack(z->pid);
    z->pid = 0;
    z->paused = false;
}

bool zk_node_running(struct zk_cluster *c, int i)
{
    if (i < 0 || i >= c->n || c->nodes[i].pid <= 0) {
        return false;
    }
    struct zk_node *z = &c->nodes[i];
    pid_t r = waitpid(z->pid, NULL, WNOHANG);
    if (r == z->pid || (r < 0 && errno == ECHILD)) {
        reaped(z);
        return false;
    }
    return true;
}

int zk_node_kill(struct zk_cluster *c, int i)
{
    if (i < 0 || i >= c->n || c->nodes[i].pid <= 0) {
        return -ESRCH;
    }
    struct zk_node *z = &c->nodes[i];
    kill(z->pid, SIGKILL);
    kill(z->pid, SIGCONT);
    while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    reaped(z);
    return 0;
}

int zk_node_stop(struct zk_cluster *c, int i, int timeout_ms)
{
    if (i < 0 || i >= c->n || c->nodes[i].pid <= 0) {
        return -ESRCH;
    }
    struct zk_node *z = &c->nodes[i];
    kill(z->pid, SIGTERM);
    if (z->paused) {
        kill(z->pid, SIGCONT);
    }
    long long deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        pid_t r = waitpid(z->pid, NULL, WNOHANG);
        if (r == z->pid || (r < 0 && errno == ECHILD)) {
            reaped(z);
            return 0;
        }
        sleep_ms(20);
    }
    return zk_node_kill(c, i);
}

int zk_node_pause(struct zk_cluster *c, int i)
{
    if (!zk_node_running(c, i)) {
        return -ESRCH;
    }
    if (kill(c->nodes[i].pid, SIGSTOP) != 0) {
        return -errno;
    }
    /* SIGSTOP takes effect asynchronously: until every thread of the JVM has
     * stopped it may still answer. Wait for the stop (the JVM is our child). */
    int st;
    pid_t r;
    while ((r = waitpid(c->nodes[i].pid, &st, WUNTRACED)) < 0 && errno == EINTR) {
    }
    if (r < 0) {
        return -errno;
    }
    if (!WIFSTOPPED(st)) { /* it died meanwhile */
        reaped(&c->nodes[i]);
        return -ESRCH;
    }
    c->nodes[i].paused = true;
    return 0;
}

int zk_node_resume(struct zk_cluster *c, int i)
{
    if (!zk_node_running(c, i)) {
        return -ESRCH;
    }
    if (kill(c->nodes[i].pid, SIGCONT) != 0) {
        return -errno;
    }
    c->nodes[i].paused = false;
    return 0;
}

static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        return -errno;
    }
    return r == 0 ? -ETIMEDOUT : 0;
}

int zk_four_letter(int port, const char *word, char *buf, size_t len, int timeout_ms)
{
    if (len == 0 || strlen(word) != 4) {
        return -EINVAL;
    }
    buf[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto out;
        }
        rc = wait_fd(fd, POLLOUT, timeout_ms);
        if (rc != 0) {
            goto out;
        }
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0) {
            rc = -err;
            goto out;
        }
    }
    if (send(fd, word, 4, MSG_NOSIGNAL) != 4) {
        rc = -EIO;
        goto out;
    }
    size_t got = 0;
    for (;;) {
        rc = wait_fd(fd, POLLIN, timeout_ms);
        if (rc != 0) {
            goto out;
        }
        ssize_t r = recv(fd, buf + got, len - 1 - got, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        if (r == 0 || got + (size_t)r >= len - 1) {
            got += (size_t)(r > 0 ? r : 0);
            break;
        }
        got += (size_t)r;
    }
    buf[got] = '\0';
    rc = (int)got;
out:
    close(fd);
    return rc;
}

/* 1 if node i serves clients now, 0 if not yet. */
static int node_ready_once(struct zk_cluster *c, int i)
{
    char buf[2048];
    int port = c->nodes[i].client_port;
    /* Not `ruok`: a server answers imok as soon as it listens, up to ~1 s
     * before it serves sessions (a client that connects then is dropped and
     * retries with a back-off). A node without quorum says imok too. `srvr`
     * says "not currently serving requests" until the server serves, then
     * names its role. */
    if (zk_four_letter(port, "srvr", buf, sizeof(buf), ZK_PROBE_TIMEOUT_MS) <= 0) {
        return 0;
    }
    if (c->n == 1) {
        return strstr(buf, "Mode: standalone") != NULL;
    }
    return strstr(buf, "Mode: leader") != NULL || strstr(buf, "Mode: follower") != NULL;
}

int zk_node_wait_ready(struct zk_cluster *c, int i, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (!zk_node_running(c, i)) {
            return -ECHILD;
        }
        if (node_ready_once(c, i)) {
            return 0;
        }
        if (now_ms() >= deadline) {
            return -ETIMEDOUT;
        }
        sleep_ms(ZK_POLL_MS);
    }
}

int zk_cluster_wait_ready(struct zk_cluster *c, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (int i = 0; i < c->n; i++) {
        if (c->nodes[i].pid <= 0 || c->nodes[i].paused) {
            continue;
        }
        long long left = deadline - now_ms();
        int rc = zk_node_wait_ready(c, i, left > 0 ? (int)left : 0);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int zk_cluster_leader(struct zk_cluster *c, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    const char *want = c->n == 1 ? "Mode: standalone" : "Mode: leader";
    for (;;) {
        for (int i = 0; i < c->n; i++) {
            char buf[2048];
            if (!zk_node_running(c, i) || c->nodes[i].paused) {
                continue;
            }
            if (zk_four_letter(c->nodes[i].client_port, "srvr", buf, sizeof(buf),
                               ZK_PROBE_TIMEOUT_MS) > 0 &&
                strstr(buf, want)) {
                return i;
            }
        }
        if (now_ms() >= deadline) {
            return -ETIMEDOUT;
        }
        sleep_ms(ZK_POLL_MS);
    }
}

int zk_node_wipe_data(struct zk_cluster *c, int i)
{
    if (i < 0 || i >= c->n) {
        return -EINVAL;
    }
    if (zk_node_running(c, i)) {
        return -EBUSY;
    }
    char path[ZK_PATH_LEN + 32];
    snprintf(path, sizeof(path), "%s/data/version-2", c->nodes[i].dir);
    int rc = rm_tree(path);
    return rc == -ENOENT ? 0 : rc;
}

void zk_cluster_destroy(struct zk_cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        if (c->nodes[i].pid > 0) {
            zk_node_kill(c, i);
        }
    }
    if (c->base_dir[0]) {
        rm_tree(c->base_dir);
        c->base_dir[0] = '\0';
    }
    c->n = 0;
}

static int start_once(struct zk_cluster *c, int n, int timeout_ms)
{
    int ports[3 * ZK_MAX_NODES];
    int rc = pick_ports(ports, 3 * n);
    if (rc != 0) {
        return rc;
    }
    for (int i = 0; i < n; i++) {
        struct zk_node *z = &c->nodes[i];
        z->myid = i + 1;
        z->client_port = ports[3 * i];
        z->peer_port = ports[3 * i + 1];
        z->election_port = ports[3 * i + 2];
    }
    rc = write_configs(c);
    if (rc != 0) {
        return rc;
    }
    for (int i = 0; i < n; i++) {
        rc = zk_node_start(c, i);
        if (rc != 0) {
            return rc;
        }
    }
    return zk_cluster_wait_ready(c, timeout_ms);
}

int zk_cluster_start(struct zk_cluster *c, int n, int timeout_ms)
{
    if (n < 1 || n > ZK_MAX_NODES) {
        return -EINVAL;
    }
    memset(c, 0, sizeof(*c));
    snprintf(c->base_dir, sizeof(c->base_dir), "/tmp/disc-zk-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(c->base_dir)) {
        c->base_dir[0] = '\0';
        return -errno;
    }
    c->n = n;
    for (int i = 0; i < n; i++) {
        struct zk_node *z = &c->nodes[i];
        snprintf(z->dir, sizeof(z->dir), "%s/zk%d", c->base_dir, (i + 1) % 10);
        snprintf(z->cfg_path, sizeof(z->cfg_path), "%s/zk%d.cfg", c->base_dir, (i + 1) % 10);
        snprintf(z->log_path, sizeof(z->log_path), "%s/zk%d.log", c->base_dir, (i + 1) % 10);
    }
    int rc = -ETIMEDOUT;
    for (int attempt = 0; attempt < ZK_START_ATTEMPTS; attempt++) {
        rc = start_once(c, n, timeout_ms);
        if (rc == 0) {
            return 0;
        }
        bool died = false;
        for (int i = 0; i < n; i++) {
            died |= c->nodes[i].pid <= 0 || !zk_node_running(c, i);
        }
        if (rc == -ETIMEDOUT && !died) {
            break; /* slow, not a port clash: do not retry */
        }
        for (int i = 0; i < n; i++) {
            if (c->nodes[i].pid > 0) {
                zk_node_kill(c, i);
            }
        }
    }
    zk_cluster_dump_logs(c);
    zk_cluster_destroy(c);
    return rc;
}

void zk_node_connect_string(const struct zk_cluster *c, int i, char *buf, size_t len)
{
    snprintf(buf, len, "127.0.0.1:%d", c->nodes[i].client_port);
}

void zk_cluster_dump_logs(const struct zk_cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        FILE *f = fopen(c->nodes[i].log_path, "r");
        if (!f) {
            continue;
        }
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, size > 4096 ? size - 4096 : 0, SEEK_SET);
        fprintf(stderr, "---- zookeeper node %d log (%s), tail ----\n", i + 1,
                c->nodes[i].log_path);
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            fputs(line, stderr);
        }
        fclose(f);
    }
}
