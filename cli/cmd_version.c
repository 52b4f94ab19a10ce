/* n3ctl version: our version and the libraries we were built with. */
#include "config.h"

#include <stdio.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "cli/cli.h"

int cmd_version(const struct cli_cmd *cmd, int argc, char **argv)
{
    const char *arg;
    bool json = false;
    int opt, first;

    while ((opt = cli_next_opt(cmd, argc, argv, &arg, &first)) != -1) {
        if (opt == 'j')
            json = true;
        else
            return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
    }
    if (first < argc) {
        cli_usage_error(cmd, "takes no arguments");
        return EXIT_USAGE;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        char *text;

        cJSON_AddStringToObject(o, "n3ctl", PACKAGE_VERSION);
        cJSON_AddStringToObject(o, "libuv", uv_version_string());
        cJSON_AddStringToObject(o, "cjson", cJSON_Version());
        text = cJSON_Print(o);
        puts(text);
        cJSON_free(text);
        cJSON_Delete(o);
        return EXIT_OK;
    }
    printf("n3ctl %s\nlibuv %s, cJSON %s\n", PACKAGE_VERSION, uv_version_string(), cJSON_Version());
    return EXIT_OK;
}
