/* tag.c: Tag on the CPU: the shared per-world step of env/tag.h run on one thread over a
 * range of worlds (one world after another, its agents in order), the shape hook (sensors,
 * state and grid scratch for the params), and the registry entry with its two agent groups,
 * runner and tagger. No allocation per step: the grid lives in the batch's scratch. */
#include "env/tag.h"

#include "bodhi/env.h"
#include "env/env_impl.h"

static void bd_tag_reset_cpu(bd_env_batch *b, int i0, int i1)
{
    bd_tag_cfg c;
    bd_tag_shared sh;
    bd_tag_cfg_of(b->param, b->members, &c);
    for (int i = i0; i < i1; i++)
        bd_tag_world_reset(b, &c, i, 0, 0, 1, &sh);
}

static void bd_tag_step_cpu(bd_env_batch *b, int i0, int i1)
{
    bd_tag_cfg c;
    bd_tag_shared sh;
    bd_tag_cfg_of(b->param, b->members, &c);
    for (int i = i0; i < i1; i++)
        bd_tag_world_step(b, &c, i, 0, 1, &sh);
}

/* Sensors for K neighbours (6 + 7 K of the 62 declared), 9 M floats of state, the grid's
 * ints of scratch. */
static void bd_tag_shape(const float *param, bd_env_shape *s)
{
    bd_tag_cfg c;
    bd_tag_cfg_of(param, s->members, &c);
    s->obs_dim[0] = s->obs_dim[1] = c.obs_dim;
    s->state_dim = c.state_dim;
    s->scratch_dim = c.scratch_dim;
}

#define BD_TAG_BIG 3.4028235e38f
#define BD_TAG_NEIGHBOUR_CHANNELS(k)                                                                \
    {"n" #k "_dx", -1.5f, 1.5f, 0}, {"n" #k "_dy", -1.5f, 1.5f, 0}, {"n" #k "_dist", 0.0f, 1.5f, 0}, \
        {"n" #k "_dvx", -BD_TAG_BIG, BD_TAG_BIG, 0}, {"n" #k "_dvy", -BD_TAG_BIG, BD_TAG_BIG, 0},     \
        {"n" #k "_tagger", 0.0f, 1.0f, 0}, {"n" #k "_present", 0.0f, 1.0f, 0}

/* Both groups see the same channels (the shape keeps the first 6 + 7 K). Rotated offsets
 * reach sqrt(2) of the arena; speeds are in tagger top speeds, unbounded by the params. */
static const bd_channel tag_sensors[BD_TAG_OBS(BD_TAG_MAX_K)] = {
    {"x", 0.0f, 1.0f, 0},
    {"y", 0.0f, 1.0f, 0},
    {"cos", -1.0f, 1.0f, 0},
    {"sin", -1.0f, 1.0f, 0},
    {"speed", 0.0f, BD_TAG_BIG, 0},
    {"tagger", 0.0f, 1.0f, 0},
    BD_TAG_NEIGHBOUR_CHANNELS(0),
    BD_TAG_NEIGHBOUR_CHANNELS(1),
    BD_TAG_NEIGHBOUR_CHANNELS(2),
    BD_TAG_NEIGHBOUR_CHANNELS(3),
    BD_TAG_NEIGHBOUR_CHANNELS(4),
    BD_TAG_NEIGHBOUR_CHANNELS(5),
    BD_TAG_NEIGHBOUR_CHANNELS(6),
    BD_TAG_NEIGHBOUR_CHANNELS(7),
};

static const bd_channel tag_actuators[2] = {
    {"accel", -1.0f, 1.0f, 0},
    {"turn", -1.0f, 1.0f, 0},
};

static const bd_env_param tag_params[BD_TAG_NPARAMS] = {
    [BD_TAG_RUNNERS] = {"runners", 20, 1, 65536, 1, "runners per world (group runner)"},
    [BD_TAG_TAGGERS] = {"taggers", 5, 1, 65536, 1, "taggers per world (group tagger)"},
    [BD_TAG_ARENA] = {"arena", 10, 1, 1e4f, 0, "side of the square arena [0, arena]^2"},
    [BD_TAG_RUNNER_SPEED] = {"runner_speed", 0.2f, 0, 1e4f, 0, "a runner's top speed (distance per step)"},
    [BD_TAG_TAGGER_SPEED] = {"tagger_speed", 0.25f, 1e-3f, 1e4f, 0,
                             "a tagger's top speed (the unit of speeds in observations)"},
    [BD_TAG_ACCEL] = {"accel", 0.05f, 0, 1e4f, 0, "speed change per step at accel 1"},
    [BD_TAG_TURN] = {"turn", 0.6f, 0, 3.14159265f, 0, "heading change per step at turn 1 (rad)"},
    [BD_TAG_RADIUS] = {"tag_radius", 0.5f, 1e-3f, 1e4f, 0, "a tagger tags the runners this close"},
    [BD_TAG_NEIGHBOURS] = {"neighbours", 5, 1, BD_TAG_MAX_K, 1, "nearest other agents each agent sees"},
    [BD_TAG_RESPAWN] = {"respawn", 1, 0, 1, 1,
                        "1: a tagged runner reappears at random; 0: it is out until its world resets"},
    [BD_TAG_BRUTE] = {"brute_force", 0, 0, 1, 1, "1: search neighbours among all agents (the grid's reference)"},
};

static const bd_env_group tag_groups[2] = {
    {"runner", BD_TAG_RUNNERS, BD_TAG_OBS(BD_TAG_MAX_K), 2, tag_sensors, tag_actuators},
    {"tagger", BD_TAG_TAGGERS, BD_TAG_OBS(BD_TAG_MAX_K), 2, tag_sensors, tag_actuators},
};

const bd_env_desc bd_env_tag = {
    .abi_version = BD_ENV_ABI,
    .name = "tag",
    .summary = "runners flee taggers in a square arena; tagged -1, tagger +1 per tag, 200-step limit",
    .discrete = 0,
    .default_max_steps = BD_TAG_MAX_STEPS,
    .reset_cpu = bd_tag_reset_cpu,
    .step_cpu = bd_tag_step_cpu,
    .reset_cuda = BD_CUDA_FN(bd_tag_reset_cuda),
    .step_cuda = BD_CUDA_FN(bd_tag_step_cuda),
    .params = tag_params,
    .nparams = BD_TAG_NPARAMS,
    .groups = tag_groups,
    .ngroups = 2,
    .shape = bd_tag_shape,
};
