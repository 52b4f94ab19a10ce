/*
 * The deploy lock: a directory <deploy_path>/.n3/lock on the environment's lock target, with
 * who holds it (info.json: user@host, pid, why, since), its token, and its lease. Every
 * operation on it is one shell command on the lock target that runs under flock on
 * .n3/lock.flock, so each is one atomic decision there: of any number of processes racing to
 * take it, plain or with force, exactly one gets it; a lock is made whole in a directory of its
 * own and renamed into place, so it is never seen half-made.
 *
 * Leases are judged by the lock target's clock, never by comparing another machine's time
 * with ours: a holder renews by touching .n3/lock/lease, and the lease has run out when the
 * target's clock says that file is older than the lease. A lease that ran out (its holder is
 * gone) can be taken over with force, and the takeover is recorded with the holder it
 * replaced. A lock taken by hand (`n3ctl lock acquire`) has no lease: held until released.
 *
 * Each taking of the lock gets a fence number, one more than any before it on the lock target
 * (.n3/lock.fence). A holder's changes on a target go through a fenced transport
 * (transport.h): before each one it confirms the lock is still its own (a renewal answered
 * within the last half lease; else it renews first and waits), and the target refuses the
 * command, atomically with it, when it has seen a higher fence (deploy/fence.h).
 */
#ifndef N3_LOCK_H
#define N3_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

struct loop;
struct transport;
struct transport_fence;
struct dlock;

/* The size of a "user@host" buffer, with its NUL: the lock's, the change's, the audit's. */
#define LOCK_WHO_MAX 160
/* The largest info.json a lock reads: n3ctl writes a few hundred bytes. */
#define LOCK_INFO_MAX 4096

struct lock_info {
    bool present;           /* there is a lock */
    bool partial;           /* its directory has no info.json, token or lease: left half-made by an
                             * older n3ctl (this one never makes such a lock) */
    bool unreadable;        /* info.json is there but cannot be read: why says why */
    char why[160];          /* "info.json is 104857600 bytes", "info.json is not JSON", ... */
    char who[LOCK_WHO_MAX]; /* "alice@laptop" */
    bool who_cut;           /* who did not fit in who: it is no one's who here */
    long pid;
    char message[256];
    int64_t since;   /* Unix seconds, by the holder's clock when it took it (shown only) */
    int64_t held_s;  /* how long it has been held, by the lock target's clock; -1: unknown */
    int64_t lease_s; /* the lease in seconds; 0: held until released (by hand); -1: none */
    int64_t age_s;   /* since its last renewal, by the lock target's clock; -1: unknown */
    bool stale;      /* its lease ran out (or it was left half-made longer than a lease) */
    uint64_t fence;  /* its fence number; 0: unknown */
    char token[33];  /* "" when it has none that can be read */
    char id[200];    /* what the lock target tells this lock apart by, for a removal */
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
 * by the lock target's clock (or that an older n3ctl left half-made longer than a lease ago);
 * a live lock is never taken over. On LOCK_OK, dlock_taken_over says whose lock it replaced.
 */
void dlock_acquire(struct dlock *l, const char *who, long pid, const char *message, bool lease,
                   bool force, lock_fn done, void *arg);
/* Work under a lock taken by hand by the same who (holder, as dlock_status read it): its fence,
 * its token (confirmed before changes); it is not renewed, and not released by this process.
 * -1 when its info cannot be read (no token or fence to work under). */
int dlock_adopt(struct dlock *l, const struct lock_info *holder);
/*
 * Give it back. Ours (by token), or one taken by hand by the same who; force: whoever holds it
 * (one whose info cannot be read too). done: LOCK_OK (holder: the lock removed; or msg "there
 * is no lock"), LOCK_HELD (not ours, or it changed meanwhile: holder says whose it is now),
 * LOCK_ERROR. A renewal of ours in flight is waited for first.
 */
void dlock_release(struct dlock *l, const char *who, bool force, lock_fn done, void *arg);
/*
 * dlock_release in two steps, for who writes under the lock before it goes (the record of its
 * release, while no one else can write there). dlock_release_check: which lock would go:
 * LOCK_OK with holder (holder->present false: there is none), LOCK_HELD when it is not ours
 * (and not force), LOCK_ERROR. dlock_remove: remove that lock, if it is still the same one (by
 * its id): answers as dlock_release. break_fence: the lock is broken, not given back by its
 * holder: the fence moves on (dlock_broken_fence), so that a holder still working is refused.
 */
void dlock_release_check(struct dlock *l, const char *who, bool force, lock_fn done, void *arg);
void dlock_remove(struct dlock *l, const struct lock_info *holder, bool break_fence, lock_fn done,
                  void *arg);

bool dlock_held(const struct dlock *l);
/* The lock was taken from us (a renewal or a target's fence found it someone else's). */
bool dlock_lost(const struct dlock *l);
/* Why it was lost ("" while it is not). */
const char *dlock_lost_why(const struct dlock *l);
/* When the lock was taken over from a stale holder: who that was (else NULL). */
const struct lock_info *dlock_taken_over(const struct dlock *l);
/* What the last dlock_acquire wrote (or was writing) as the holder, and its fence. */
const struct lock_info *dlock_mine(const struct dlock *l);
/* The fence a dlock_remove with break_fence moved to (0: none). */
uint64_t dlock_broken_fence(const struct dlock *l);

/* The fence of the lock this process holds (or adopted), for transport_set_fence: valid while
 * l is. */
const struct transport_fence *dlock_fence(struct dlock *l);

/* "user@host" of this process; N3CTL_OPERATOR, when set, stands for the user. out has
 * LOCK_WHO_MAX bytes; dlock_check_operator has made sure it fits. */
void dlock_whoami(char *out, size_t len);
/* Is N3CTL_OPERATOR, if set, a usable name, and does user@host fit in LOCK_WHO_MAX? */
int dlock_check_operator(struct err *err);

#endif
