/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_acl.c — discd's ZooKeeper ACLs and client log (issue 9,
 * problem 7). Two discd authenticate with their own digest credentials
 * (files of mode 0600); their nodes are readable by anyone, but another
 * identity (and an unauthenticated client) can neither delete nor rewrite
 * them, nor delete a host subtree or the tree. A credentials file readable
 * by others is refused at start-up with an error naming the cause. While
 * ZooKeeper is down the C client's own log lines come out through discd's
 * log, in its format and rate-limited.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zk_server.h"
#include "zkc.h"
#include "zkd_util.h"

static struct zk_cluster zk;
static struct zkd a, b;
static struct discd_proc bad;
static zhandle_t *mallory, *anon;
static char dir[256];

static void teardown(void)
{
    zkc_close(mallory);
    zkc_close(anon);
    mallory = anon = NULL;
    discd_proc_cleanup(&bad);
    zkd_teardown(&zk, &a, &b, NULL);
    if (dir[0]) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        (void)system(cmd);
    }
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

Test(zkd_acl, other_identities_cannot_touch_a_hosts_nodes, .fini = teardown, .timeout = 200)
{
    snprintf(dir, sizeof(dir), "/tmp/disc-zkacl-%d-XXXXXX", (int)getpid());
    cr_assert(mkdtemp(dir));
    char fa[300], fb[300], fbad[300], arg_a[320], arg_b[320], arg_bad[320];
    snprintf(fa, sizeof(fa), "%s/a.cred", dir);
    snprintf(fb, sizeof(fb), "%s/b.cred", dir);
    snprintf(fbad, sizeof(fbad), "%s/bad.cred", dir);
    write_file(fa, "zkacl-a:secret-a\n", 0600);
    write_file(fb, "zkacl-b:secret-b\n", 0400);
    write_file(fbad, "zkacl-x:secret-x\n", 0644);
    snprintf(arg_a, sizeof(arg_a), "--zk-auth-file=%s", fa);
    snprintf(arg_b, sizeof(arg_b), "--zk-auth-file=%s", fb);
    snprintf(arg_bad, sizeof(arg_bad), "--zk-auth-file=%s", fbad);

    char root[128];
    zkd_zookeeper(&zk, root, sizeof(root), "acl");

    /* A credentials file others can read: refused, and the log says why. */
    cr_assert_eq(discd_proc_init(&bad, "zkaclx"), 0);
    char zkarg[300], rootarg[200];
    snprintf(zkarg, sizeof(zkarg), "--zk=%s", zk.connect);
    snprintf(rootarg, sizeof(rootarg), "--zk-root=%s", root);
    char *const bad_args[] = {zkarg, rootarg, arg_bad, NULL};
    cr_assert_eq(discd_proc_spawn(&bad, bad_args), 0);
    cr_assert_geq(proc_wait(&bad.proc, 10000 * dt_slow()), 0, "discd did not exit");
    cr_assert_neq(proc_exit_code(&bad.proc), 0,
                  "discd started with a world-readable credentials file");
    cr_assert_geq(dt_log_has(&bad, "chmod 600"), 1, "the error does not name the cause");

    /* One owned by another user (as root in CI: the file is chowned to nobody). */
    if (geteuid() == 0) {
        char fother[300], arg_other[320];
        snprintf(fother, sizeof(fother), "%s/other.cred", dir);
        write_file(fother, "zkacl-y:secret-y\n", 0600);
        cr_assert_eq(chown(fother, 65534, 65534), 0);
        snprintf(arg_other, sizeof(arg_other), "--zk-auth-file=%s", fother);
        char *const other_args[] = {zkarg, rootarg, arg_other, NULL};
        cr_assert_eq(discd_proc_spawn(&bad, other_args), 0);
        cr_assert_geq(proc_wait(&bad.proc, 10000 * dt_slow()), 0, "discd did not exit");
        cr_assert_neq(proc_exit_code(&bad.proc), 0, "discd accepted credentials another user owns");
        cr_assert_geq(dt_log_has(&bad, "owned by uid 65534"), 1, "the error does not say why");
    }

    zkd_start_extra(&a, "zkaa", zk.connect, root, arg_a);
    zkd_start_extra(&b, "zkab", zk.connect, root, arg_b);
    struct disc_status st;
    zkd_all_synced(15000, &a, &b, NULL);
    char id[DISC_ID_LEN + 1];
    zkd_register(&a, "zka-svc", "10.8.0.1:80", id);
    cr_assert(zkd_wait_count(&b, "zka-svc", 1, 10000), "b (another identity) cannot read a's node");

    mallory = zkc_open(zk.connect, "mallory:guess", 10000);
    anon = zkc_open(zk.connect, NULL, 10000);
    cr_assert(mallory && anon);
    char hdir[256], node[128], path[512], data[1024], orig[1024];
    snprintf(hdir, sizeof(hdir), "%s/hosts/%s", root, a.host_id);
    cr_assert_eq(zkc_find_child(anon, hdir, id, node, sizeof(node)), ZOK);
    snprintf(path, sizeof(path), "%s/%s", hdir, node);
    cr_assert_eq(zkc_get(anon, path, orig, sizeof(orig), NULL), ZOK, "not readable by all");
    zhandle_t *who[] = {mallory, anon};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(zkc_delete(who[i], path), ZNOAUTH, "client %d deleted a's node", i);
        cr_assert_eq(zkc_set(who[i], path, "garbage{"), ZNOAUTH, "client %d rewrote a's node", i);
        char extra[600];
        snprintf(extra, sizeof(extra), "%s/00000000-0000-4000-8000-000000000000-1", hdir);
        cr_assert_eq(zkc_create(who[i], extra, "{}", ZOO_PERM_ALL, 0), ZNOAUTH,
                     "client %d added a node to a's subtree", i);
        cr_assert_eq(zkc_deleteall(who[i], hdir), ZNOAUTH, "client %d removed a's subtree", i);
        char hosts[256];
        snprintf(hosts, sizeof(hosts), "%s/hosts", root);
        cr_assert_eq(zkc_deleteall(who[i], hosts), ZNOAUTH, "client %d removed the tree", i);
    }
    cr_assert_eq(zkc_get(anon, path, data, sizeof(data), NULL), ZOK);
    cr_assert_str_eq(data, orig);
    cr_assert_eq(zkd_count(&b, "zka-svc"), 1);
    /* b (its own identity) may add a host subtree: the region works. */
    char idb[DISC_ID_LEN + 1];
    zkd_register(&b, "zka-svc", "10.8.0.2:80", idb);
    cr_assert(zkd_wait_count(&a, "zka-svc", 2, 10000), "a does not see b's instance");

    /* ZooKeeper down: the client's own lines go through discd's log,
     * rate-limited (at most 10 per 10 s window, plus one summary line). */
    cr_assert_eq(zk_node_stop(&zk, 0, 10000), 0);
    proc_sleep_ms(5000);
    int lines = dt_log_has(&a.proc, "zk: zookeeper client: ");
    cr_assert_geq(lines, 1, "no client line in discd's log");
    cr_assert_leq(lines, 12, "%d client lines in 5 s: not rate-limited", lines);
    cr_assert_eq(dt_log_has(&a.proc, "ZOO_ERROR"), 0, "a raw client line reached the log");
    cr_assert_eq(zk_node_start(&zk, 0), 0);
    cr_assert_eq(zk_node_wait_ready(&zk, 0, 30000 * dt_slow()), 0);
    cr_assert(zkd_wait_synced(&a, 20000, &st), "a: flags %#x", st.flags);
    zkd_finish(&a);
    zkd_finish(&b);
}
