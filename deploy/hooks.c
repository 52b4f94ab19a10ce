/* Hooks: the commands of n3.json's "hooks", with their variables filled in, quoted. */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "core/buf.h"
#include "core/shell.h"
#include "deploy/hooks.h"

static const char *value_of(const struct hook_vars *v, const char *name, size_t len)
{
    static const struct {
        const char *name;
        size_t offset;
    } vars[] = {
        {"version", offsetof(struct hook_vars, version)},
        {"release_dir", offsetof(struct hook_vars, release_dir)},
        {"slot", offsetof(struct hook_vars, slot)},
        {"port", offsetof(struct hook_vars, port)},
        {"target", offsetof(struct hook_vars, target)},
    };
    size_t i;

    for (i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        if (strlen(vars[i].name) == len && strncmp(vars[i].name, name, len) == 0)
            return *(const char *const *)((const char *)v + vars[i].offset);
    }
    return NULL;
}

int hook_expand(const char *hook, const char *tmpl, const struct hook_vars *v, struct buf *out,
                struct err *err)
{
    const char *p, *end, *val;

    for (p = tmpl; *p != '\0'; p++) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            buf_addc(out, *p++);
            continue;
        }
        if (*p != '{') {
            buf_addc(out, *p);
            continue;
        }
        end = strchr(p, '}');
        if (end == NULL)
            return err_set(err, "hook %s: \"{\" is not closed (write {{ for a brace)", hook);
        if (v->release_dir_expr != NULL && (size_t)(end - p - 1) == strlen("release_dir") &&
            strncmp(p + 1, "release_dir", (size_t)(end - p - 1)) == 0) {
            buf_adds(out, v->release_dir_expr);
            p = end;
            continue;
        }
        val = value_of(v, p + 1, (size_t)(end - p - 1));
        if (val == NULL)
            return err_set(err, "hook %s: {%.*s} has no value when this hook runs", hook,
                           (int)(end - p - 1), p + 1);
        shell_quote(out, val);
        p = end;
    }
    return 0;
}
