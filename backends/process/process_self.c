/* process_self.c: the process layer for a world of one process.
 *
 * Linked when the build has no MPI. Every group has one member, so every
 * collective is a copy or nothing: SUM, AVG and MAX over one rank are the
 * identity, a gather or scatter of one block moves it from send to recv, and
 * a broadcast from rank 0 to itself does nothing. Point-to-point traffic has
 * no peer, which is a configuration error (pipeline stages > 1 without MPI),
 * so send and recv stop the program with a message saying so; sendrecv with
 * rank 0 (itself) as both peers is a copy.
 * The interface is described in process.h. */
#include "process/process.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

struct mt_proc_comm {
    int color, key; /* as given to split (world: 0, 0); kept for messages */
};

static mt_proc_comm *comm_new(int color, int key)
{
    mt_proc_comm *c = malloc(sizeof *c);
    if (!c) mt_die("process layer: out of memory allocating a communicator");
    c->color = color;
    c->key = key;
    return c;
}

const char *mt_proc_kind(void) { return "self"; }

/* A build without MPI started by a launcher (mpiexec, mpirun) as one of
 * several processes would otherwise train N independent copies: refuse,
 * naming the launcher's variable and the configure option. */
static void refuse_launched_world(void)
{
    static const char *vars[] = {"PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                                 "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1)
            mt_user_error("rebuild with MPI: install an MPI (e.g. mpich libmpich-dev) and run "
                          "./configure --with-mpi && make",
                          "this megatron-c was built without MPI, but it was launched as one of %d "
                          "processes (%s=%s)", atoi(v), vars[i], v);
    }
}

mt_proc_comm *mt_proc_world(void)
{
    static mt_proc_comm *world; /* lives until exit */
    if (!world) {
        refuse_launched_world();
        world = comm_new(0, 0);
    }
    return world;
}

mt_proc_comm *mt_proc_split(mt_proc_comm *parent, int color, int key)
{
    MT_ASSERT(parent != NULL);
    return comm_new(color, key);
}

void mt_proc_free(mt_proc_comm *c)
{
    if (c != mt_proc_world()) free(c);
}

int mt_proc_rank(const mt_proc_comm *c)
{
    (void)c;
    return 0;
}

int mt_proc_size(const mt_proc_comm *c)
{
    (void)c;
    return 1;
}

void mt_proc_all_reduce(mt_proc_comm *c, void *buf, size_t count, enum mt_dtype t,
                            enum mt_redop op)
{
    /* SUM, AVG (divide by 1) and MAX of a single contribution: identity. */
    (void)c, (void)buf, (void)count, (void)t, (void)op;
}

void mt_proc_all_gather(mt_proc_comm *c, void *recv, const void *send, size_t count_per_rank,
                            enum mt_dtype t)
{
    (void)c;
    if (recv != send) memcpy(recv, send, count_per_rank * mt_dtype_size(t));
}

void mt_proc_reduce_scatter(mt_proc_comm *c, void *recv, const void *send,
                                size_t count_per_rank, enum mt_dtype t, enum mt_redop op)
{
    (void)c, (void)op;
    if (recv != send) memcpy(recv, send, count_per_rank * mt_dtype_size(t));
}

void mt_proc_broadcast(mt_proc_comm *c, void *buf, size_t count, enum mt_dtype t, int root)
{
    (void)c, (void)buf, (void)count, (void)t;
    MT_ASSERT(root == 0);
}

void mt_proc_send(mt_proc_comm *c, const void *buf, size_t count, enum mt_dtype t, int peer)
{
    (void)c, (void)buf, (void)t;
    mt_die("send of %zu elements to rank %d: this build has no MPI, so the world is one "
           "process and there is no peer (rebuild with --with-mpi and run under mpiexec)",
           count, peer);
}

void mt_proc_recv(mt_proc_comm *c, void *buf, size_t count, enum mt_dtype t, int peer)
{
    (void)c, (void)buf, (void)t;
    mt_die("recv of %zu elements from rank %d: this build has no MPI, so the world is one "
           "process and there is no peer (rebuild with --with-mpi and run under mpiexec)",
           count, peer);
}

void mt_proc_sendrecv(mt_proc_comm *c, const void *sbuf, int dst, void *rbuf, int src,
                          size_t count, enum mt_dtype t)
{
    (void)c;
    if (dst != 0 || src != 0)
        mt_die("sendrecv of %zu elements (to rank %d, from rank %d): this build has no MPI, so "
               "the world is one process and the only peer is rank 0 itself (rebuild with "
               "--with-mpi and run under mpiexec)",
               count, dst, src);
    if (rbuf != sbuf && count) memcpy(rbuf, sbuf, count * mt_dtype_size(t));
}
