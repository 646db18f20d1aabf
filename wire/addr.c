/* addr.c: a run's socket addresses (see addr.h). */
#include "wire/addr.h"

#include "common/util.h"

char *bd_url_brain(const char *run_dir, const char *agent)
{
    return bd_strfmt("ipc://%s/%s.brain", run_dir, agent);
}

char *bd_url_events(const char *run_dir)
{
    return bd_strfmt("ipc://%s/events", run_dir);
}

char *bd_url_control(const char *run_dir)
{
    return bd_strfmt("ipc://%s/control", run_dir);
}
