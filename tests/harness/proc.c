/* SPDX-License-Identifier: MIT */
/* proc.c — spawning and reaping test child processes (see proc.h). */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Children still to be killed at exit. Test-harness only state. */
#define PROC_TRACK_MAX 256
static pid_t tracked[PROC_TRACK_MAX];
static pid_t tracked_by[PROC_TRACK_MAX]; /* the process that spawned it */
static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static bool atexit_installed;

static void kill_tracked_at_exit(void)
{
    pthread_mutex_lock(&track_lock);
    /* A forked copy of the test process that calls exit() must not kill
     * its parent's children: only the spawning process does. */
    pid_t self = getpid();
    for (int i = 0; i < PROC_TRACK_MAX; i++) {
        if (tracked[i] > 0 && tracked_by[i] == self) {
            kill(tracked[i], SIGKILL);
            waitpid(tracked[i], NULL, 0);
            tracked[i] = 0;
        }
    }
    pthread_mutex_unlock(&track_lock);
}

static void track(pid_t pid)
{
    pthread_mutex_lock(&track_lock);
    if (!atexit_installed) {
        atexit(kill_tracked_at_exit);
        atexit_installed = true;
    }
    for (int i = 0; i < PROC_TRACK_MAX; i++) {
        if (tracked[i] == 0) {
            tracked[i] = pid;
            tracked_by[i] = getpid();
            break;
        }
    }
    pthread_mutex_unlock(&track_lock);
}

static void untrack(pid_t pid)
{
    pthread_mutex_lock(&track_lock);
    for (int i = 0; i < PROC_TRACK_MAX; i++) {
        if (tracked[i] == pid)
            tracked[i] = 0;
    }
    pthread_mutex_unlock(&track_lock);
}

long long proc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long proc_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void proc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Build environ + extras (extras replace variables of the same name). */
static char **build_env(char *const env_extra[])
{
    size_t n_env = 0, n_extra = 0;
    while (environ && environ[n_env])
        n_env++;
    while (env_extra && env_extra[n_extra])
        n_extra++;
    char **env = calloc(n_env + n_extra + 1, sizeof(*env));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool replaced = false;
        for (size_t j = 0; j < n_extra; j++) {
            if (strncmp(env_extra[j], environ[i], klen) == 0 && env_extra[j][klen] == '=')
                replaced = true;
        }
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        env[k++] = env_extra[j];
    env[k] = NULL;
    return env;
}

int proc_spawn(struct proc *p, char *const argv[], char *const env_extra[], const char *log_path)
{
    memset(p, 0, sizeof(*p));
    if (log_path)
        snprintf(p->log_path, sizeof(p->log_path), "%s", log_path);
    char **env = build_env(env_extra);
    if (!env)
        return -ENOMEM;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        free(env);
        return -e;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        int in = open("/dev/null", O_RDONLY);
        int out = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        /* Close everything else (sockets of the test must not leak). */
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(argv[0], argv, env);
        _exit(127);
    }
    free(env);
    p->pid = pid;
    track(pid);
    return 0;
}

static void mark_exited(struct proc *p, int status)
{
    untrack(p->pid);
    p->exited = true;
    p->status = status;
}

bool proc_alive(struct proc *p)
{
    if (p->pid <= 0 || p->exited)
        return false;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        mark_exited(p, st);
        return false;
    }
    return r == 0;
}

int proc_signal(struct proc *p, int sig)
{
    if (p->pid <= 0 || p->exited)
        return -ESRCH;
    return kill(p->pid, sig) == 0 ? 0 : -errno;
}

int proc_wait(struct proc *p, int timeout_ms)
{
    if (p->pid <= 0)
        return -ESRCH;
    if (p->exited)
        return 0;
    long long deadline = proc_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            mark_exited(p, st);
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return -errno;
        if (timeout_ms >= 0 && proc_now_ms() >= deadline)
            return -ETIMEDOUT;
        proc_sleep_ms(2);
    }
}

int proc_exit_code(const struct proc *p)
{
    if (!p->exited)
        return -2;
    if (WIFEXITED(p->status))
        return WEXITSTATUS(p->status);
    return -1;
}

void proc_kill(struct proc *p)
{
    if (p->pid <= 0 || p->exited)
        return;
    kill(p->pid, SIGKILL);
    int st;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
    }
    mark_exited(p, st);
}

int proc_stop(struct proc *p, int timeout_ms)
{
    if (p->pid <= 0 || p->exited)
        return -ESRCH;
    kill(p->pid, SIGTERM);
    if (proc_wait(p, timeout_ms) == -ETIMEDOUT) {
        proc_kill(p);
        return -EINTR;
    }
    int code = proc_exit_code(p);
    return code >= 0 ? code : -EINTR;
}

void proc_dump_log(const struct proc *p)
{
    if (p->log_path[0])
        proc_dump_file(p->log_path, p->log_path);
}

void proc_dump_file(const char *path, const char *title)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fprintf(stderr, "---- %s ----\n", title);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stderr);
    fprintf(stderr, "---- end ----\n");
    fclose(f);
}
