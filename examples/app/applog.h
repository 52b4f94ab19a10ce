/*
 * The sample app's log: one line per event on stderr (the service's log file), each
 * "TIME n3app[PID]: what happened", written with one write(2) so that lines of several
 * processes appending to one file never mix.
 */
#ifndef N3APP_APPLOG_H
#define N3APP_APPLOG_H

void applog_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
