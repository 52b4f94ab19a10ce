/* Helpers shared by the unit tests: run a loop until something happens, temp dirs. */
#ifndef N3_TESTUTIL_H
#define N3_TESTUTIL_H

#include <stdbool.h>
#include <sys/types.h>

struct loop;
struct Suite;

/* Run a suite with Check; the exit status for main(): EXIT_SUCCESS when all passed. */
int tu_run_suite(struct Suite *s);

/* Run the loop until pred(arg) is true or real_timeout_ms of real time pass.
 * Returns pred's final value. Never sleeps: it waits for loop events. */
bool tu_run_until(struct loop *loop, bool (*pred)(void *), void *arg, unsigned real_timeout_ms);
/* A fresh temporary directory (removed by tu_rmdir_r); aborts on failure. */
char *tu_mkdtemp(void);
void tu_rmdir_r(const char *path);
/* Write a file; aborts on failure. */
void tu_write_file(const char *path, const char *text);
/* Read a whole file into a new string, or NULL. */
char *tu_read_file(const char *path);

/* Start a server for a test (argv[0] looked up in PATH, then in /usr/sbin): its pid, or -1
 * with errno. It is tied to the test's process: TERM when that one ends, also when an assertion
 * ends it before its teardown could stop the server. */
pid_t tu_spawn(const char *const *argv);

#endif
