/* mapped.c: see mapped.h. The handler only reads the registry and calls
 * write(2) and _exit(2), which are async-signal-safe. */
#include "core/mapped.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_MAPPED 64

static struct {
    const char *base;
    size_t size;
    char path[1024];
} maps[MAX_MAPPED];
static volatile sig_atomic_t installed;

static void say(const char *s) { (void)!write(2, s, strlen(s)); }

static void on_sigbus(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    const char *addr = info ? (const char *)info->si_addr : NULL;
    for (int i = 0; i < MAX_MAPPED; i++)
        if (maps[i].base && addr >= maps[i].base && addr < maps[i].base + maps[i].size) {
            say("megatron-c: error: ");
            say(maps[i].path);
            say(" became shorter while it was being read (truncated or rewritten by another program)\n"
                "  hint: do not change a dataset while a run reads it; write a new one under another name\n");
            _exit(1);
        }
    /* not ours: the default action (a core dump, as without this handler) */
    signal(sig, SIG_DFL);
    raise(sig);
}

void mt_mapped_register(const void *base, size_t size, const char *path)
{
    if (!installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, NULL);
        installed = 1;
    }
    for (int i = 0; i < MAX_MAPPED; i++)
        if (!maps[i].base) {
            snprintf(maps[i].path, sizeof maps[i].path, "%s", path);
            maps[i].size = size;
            maps[i].base = base; /* last: the handler sees a complete entry */
            return;
        }
}

void mt_mapped_unregister(const void *base)
{
    for (int i = 0; i < MAX_MAPPED; i++)
        if (maps[i].base == base) maps[i].base = NULL;
}
