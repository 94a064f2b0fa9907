/* SPDX-License-Identifier: MIT */
/*
 * client_service.c — a minimal C service for the tests: registers itself
 * through libdiscclient with a session check, prints the instance id on
 * stdout, and then does nothing at all (the library's background thread
 * answers discd's pings) until it is killed.
 *
 *   client_service SOCKET SERVICE ADDRESS [INTERVAL_MS]
 *
 * Exit codes: 1 usage, 2 connect failed, 3 register failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "discclient.h"

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: client_service SOCKET SERVICE ADDRESS [INTERVAL_MS]\n");
        return 1;
    }
    disc_client *cl;
    int rc = disc_client_connect(argv[1], 0, &cl);
    if (rc < 0) {
        fprintf(stderr, "connect: %s\n", disc_client_strerror(rc));
        return 2;
    }
    struct disc_instance_desc d = {.service = argv[2], .version = "1.0", .address = argv[3]};
    struct disc_check_desc c = {.type = DISC_CHECK_SESSION,
                                .interval_ms = argc == 5 ? (uint32_t)atoi(argv[4]) : 0};
    c.timeout_ms = c.interval_ms * 3 / 4;
    c.misses = c.interval_ms ? 2 : 0;
    char id[DISC_ID_LEN + 1];
    rc = disc_client_register(cl, &d, &c, id);
    if (rc < 0) {
        char msg[256];
        disc_client_error(cl, msg, sizeof(msg));
        fprintf(stderr, "register: %s %s\n", disc_client_strerror(rc), msg);
        return 3;
    }
    printf("%s\n", id);
    fflush(stdout);
    for (;;)
        pause();
}
