/* Numbers for people. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core/fmt.h"

void fmt_duration(char *out, size_t len, unsigned long long us)
{
    unsigned long long ms = us / 1000;

    if (ms < 1000)
        snprintf(out, len, "%llums", ms);
    else if (ms < 60000)
        snprintf(out, len, "%.2fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(out, len, "%llum%02llus", ms / 60000, (ms / 1000) % 60);
    else
        snprintf(out, len, "%lluh%02llum", ms / 3600000, (ms / 60000) % 60);
}

bool fmt_shape_ok(const char *s, const char *shape)
{
    size_t i;

    if (s == NULL || strlen(s) != strlen(shape))
        return false;
    for (i = 0; shape[i] != '\0'; i++) {
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
            return false;
    }
    return true;
}
