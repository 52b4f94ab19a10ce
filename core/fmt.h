/* Numbers for people: durations. */
#ifndef N3_FMT_H
#define N3_FMT_H

#include <stdbool.h>
#include <stddef.h>

/* "850ms", "1.25s", "3m05s", "2h10m". */
void fmt_duration(char *out, size_t len, unsigned long long us);
/* Does s have shape's form exactly: each 'd' a digit, every other character itself
 * ("dddd-dd-ddTdd:dd:ddZ")? */
bool fmt_shape_ok(const char *s, const char *shape);

#endif
