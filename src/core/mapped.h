/* mapped.h: files read through mmap, named when they change under a run.
 *
 * A mapped file truncated while it is read (a dataset rewritten by another
 * job, a full network disk) makes the kernel send SIGBUS on the next read
 * of a vanished page. Registered mappings turn that signal into an error
 * naming the file, on stderr, and exit status 1, instead of a bare
 * "Bus error". A SIGBUS outside every registered mapping keeps its default
 * action. */
#ifndef MT_MAPPED_H
#define MT_MAPPED_H
#include <stddef.h>

/* Registers [base, base + size) as a mapping of path (copied). At most 64
 * at a time; beyond that a mapping simply stays unnamed. */
void mt_mapped_register(const void *base, size_t size, const char *path);
void mt_mapped_unregister(const void *base);

#endif
