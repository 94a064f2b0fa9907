/* SPDX-License-Identifier: MIT */
/*
 * consumer.c — a tiny program outside the source tree that uses the
 * installed libraries (built by tests/packaging/test_install.sh once with
 * pkg-config and once with find_package(discshm)):
 *
 *   consumer NAME SERVICE            print each address of SERVICE (libdiscshm)
 *   consumer NAME SERVICE SOCKET     also register SERVICE at 127.0.0.1:1 with a
 *                                    session (libdiscclient), wait until it is in
 *                                    the segment, print "self-visible ID"
 *
 * Exit 0 on success, 1 with a message on stderr otherwise.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <discclient.h>
#include <discshm.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: consumer NAME SERVICE [SOCKET]\n");
        return 1;
    }
    disc_handle *h;
    int rc = disc_open(argv[1], 0, &h);
    if (rc < 0) {
        fprintf(stderr, "disc_open %s: %s\n", argv[1], disc_strerror(rc));
        return 1;
    }
    static char buf[256 * 1024];
    struct disc_instance *list;
    size_t need;
    disc_client *cl = NULL;
    if (argc == 4) {
        if ((rc = disc_client_connect(argv[3], 0, &cl)) < 0) {
            fprintf(stderr, "disc_client_connect %s: %s\n", argv[3], disc_client_strerror(rc));
            return 1;
        }
        struct disc_instance_desc d = {.service = argv[2], .address = "127.0.0.1:1"};
        char id[DISC_ID_LEN + 1];
        if ((rc = disc_client_register(cl, &d, NULL, id)) < 0) {
            fprintf(stderr, "disc_client_register: %s\n", disc_client_strerror(rc));
            return 1;
        }
        for (int tries = 0; tries < 2000; tries++) { /* up to 20 s on a loaded machine */
            if (disc_lookup_id(h, id, buf, sizeof buf, &list, &need) == 0) {
                printf("self-visible %s\n", id);
                break;
            }
            nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
        }
    }
    /* while the session (if any) is still open: closing it removes its instance */
    int n = disc_lookup(h, argv[2], buf, sizeof buf, &list, &need);
    if (n < 0) {
        fprintf(stderr, "disc_lookup %s: %s\n", argv[2], disc_strerror(n));
        return 1;
    }
    for (int i = 0; i < n; i++)
        printf("%s\n", list[i].address);
    if (cl)
        disc_client_close(cl);
    disc_close(h);
    return 0;
}
