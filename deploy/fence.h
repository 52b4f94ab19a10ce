/*
 * Fences on targets. <deploy_path>/.n3/fence holds the highest fence number (deploy/lock.h)
 * that a command has come with there. A holder of the deploy lock runs every command on a
 * target wrapped (fence_wrap): it raises the target's fence to its own number if it is lower,
 * then runs the command under a shared flock on .n3/fence.lock, refusing it when the target
 * has seen a higher number. So once a new holder (or a breaker) has raised a target's fence,
 * nothing of an old holder that still works there runs any more, and an old command in flight
 * is waited for before the fence moves (the raise takes the flock exclusively). A target
 * without flock(1) checks and raises without it (a short window between check and command).
 */
#ifndef N3_FENCE_H
#define N3_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "deploy/transport.h"

struct buf;

/* A fenced command's exit status when the target refused it (with its marker on stderr). */
#define FENCE_REFUSED_EXIT 76
/* How long a command waits for the fence's flock (another holder's command in flight). */
#define FENCE_WAIT_S 30

/* The command line that runs command on the target only under fence number on deploy_path. */
void fence_wrap(struct buf *out, const char *deploy_path, uint64_t number, const char *command);

/* Did the target refuse the command for its fence? *theirs: the number it has seen. */
bool fence_refused(const struct transport_result *r, uint64_t *theirs);

/* Raise the target's fence to number (it never goes down): for a takeover or a broken lock,
 * so that the holder it replaced is refused there at once. */
struct transport_op *fence_raise(struct transport *t, const char *deploy_path, uint64_t number,
                                 transport_done_fn done, void *arg);

#endif
