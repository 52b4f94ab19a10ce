/*
 * The deploy lock: a directory <deploy_path>/.n3/lock on the environment's lock target (mkdir is
 * atomic: of two operators, exactly one gets it), with info.json inside saying who holds it
 * (user@host, pid), why, since when, and until when the lease runs. A holder renews its lease
 * while it works; a lease that ran out (its holder is gone) can be taken over with force, and
 * the takeover is recorded. A lock taken by hand (`n3ctl lock acquire`) has no lease: it is held
 * until released.
 */
#ifndef N3_LOCK_H
#define N3_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

struct loop;
struct transport;
struct dlock;

/* The size of a "user@host" buffer, with its NUL: the lock's, the change's, the audit's. */
#define LOCK_WHO_MAX 160

struct lock_info {
    bool present;           /* there is a lock */
    bool partial;           /* its directory exists but its info is not written (yet, or ever) */
    char who[LOCK_WHO_MAX]; /* "alice@laptop" */
    bool who_cut;           /* who did not fit in who: it is no one's who here */
    long pid;
    char message[256];
    int64_t since;       /* Unix seconds */
    int64_t lease_until; /* 0: held until released */
    int64_t dir_mtime;   /* of the lock directory, for a partial lock */
    char token[33];
};

enum lock_result {
    LOCK_OK,    /* done (acquired, released, renewed, or the status read) */
    LOCK_HELD,  /* someone else holds it: holder says who */
    LOCK_ERROR, /* the target could not be reached or the commands failed: msg says why */
};

typedef void (*lock_fn)(void *arg, enum lock_result r, const struct lock_info *holder,
                        const char *msg);

struct dlock *dlock_new(struct loop *loop, struct transport *t, const char *deploy_path,
                        uint64_t lease_ms);
/* Stops renewing (does not release). */
void dlock_free(struct dlock *l);

/* Who holds the lock, if anyone (holder->present). */
void dlock_status(struct dlock *l, lock_fn done, void *arg);
/*
 * Take the lock. lease: renew it every lease/3 while this process holds it (commands);
 * without, it is held until released (by hand). force: take over a lock whose lease ran out
 * (or that was left half-made longer than a lease ago); a live lock is never taken over.
 */
void dlock_acquire(struct dlock *l, const char *who, long pid, const char *message, bool lease,
                   bool force, lock_fn done, void *arg);
/*
 * Give it back. Ours (by token), or one taken by hand by the same who; force: whoever holds it.
 * done: LOCK_OK (holder: the lock removed; or msg "there is no lock"), LOCK_HELD (not ours, or
 * it changed meanwhile: holder says whose it is now), LOCK_ERROR. A renewal of ours in flight
 * is waited for first, so the removal does not race it.
 */
void dlock_release(struct dlock *l, const char *who, bool force, lock_fn done, void *arg);
/*
 * dlock_release in two steps, for who writes under the lock before it goes (the record of its
 * release, while no one else can write there). dlock_release_check: which lock would go:
 * LOCK_OK with holder (holder->present false: there is none), LOCK_HELD when it is not ours
 * (and not force), LOCK_ERROR. dlock_remove: remove that lock, if it is still the same one (its
 * token; a half-made one still without info): answers as dlock_release.
 */
void dlock_release_check(struct dlock *l, const char *who, bool force, lock_fn done, void *arg);
void dlock_remove(struct dlock *l, const struct lock_info *holder, lock_fn done, void *arg);

bool dlock_held(const struct dlock *l);
/* A renewal found the lock taken from us (after our lease ran out). */
bool dlock_lost(const struct dlock *l);
/* When the lock was taken over from a stale holder: who that was (else NULL). */
const struct lock_info *dlock_taken_over(const struct dlock *l);
/* What the last dlock_acquire wrote (or was writing) as the holder: its since, lease_until. */
const struct lock_info *dlock_mine(const struct dlock *l);

/* "user@host" of this process; N3CTL_OPERATOR, when set, stands for the user. out has
 * LOCK_WHO_MAX bytes; dlock_check_operator has made sure it fits. */
void dlock_whoami(char *out, size_t len);
/* Is N3CTL_OPERATOR, if set, a usable name, and does user@host fit in LOCK_WHO_MAX? */
int dlock_check_operator(struct err *err);

#endif
