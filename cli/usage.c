/* usage.c: the one table of `bodhi`'s commands (see cli.h): each one's function, what
 * `bodhi --help` and `bodhi CMD --help` print of it, and whether users start it. */
#include <stdio.h>
#include <string.h>

#include "bodhi/bodhi.h"
#include "cli/cli.h"

/* bodhi-envbench (bench/gpu/) carries `bodhi bench` and this help alone, without the
 * other commands' code: there the table's functions are NULL. */
#ifdef BD_HELP_ONLY
#define BD_CMD(fn) NULL
#else
#define BD_CMD(fn) fn
#endif

static const struct {
    const char *cmd;
    const char *line;   /* the usage line, after "bodhi " */
    const char *detail; /* what the command does and its options */
    int internal;       /* started by the conductor, not by users */
    int (*fn)(int argc, char **argv); /* runs it: argv[0] is the command's name */
} bd_usages[] = {
    {"run", "run FILE [--out RUN_DIR] [--device cpu|cuda|auto] [--seed N] [--listen HOST:PORT [--credential FILE]]\n"
            "  [--rank R --world-size K [--rendezvous HOST:PORT]] [--quiet]",
     "Checks FILE (as bodhi check does) and runs its phases in order, writing RUN_DIR\n"
     "(default runs/<uid>): run.yml, run.h5, memory/, checkpoints/, log.jsonl, summary.json.\n"
     "  --out RUN_DIR   where the run writes; an earlier run there is moved aside first\n"
     "  --device D      cpu, cuda or auto, for every phase (default: each phase's device)\n"
     "  --seed N        replaces the run file's seed (0 to 18446744073709551615)\n"
     "  --listen HOST:PORT  accept remote muscles (phase_config.remote_worker) there, over mutual\n"
     "                  TLS (tcp:// or tls+tcp:// may come first); they need the run's credential,\n"
     "                  RUN_DIR/remote.key (mode 0600), copied to their machine\n"
     "  --credential FILE   the remote muscles' credential to use instead (made there if missing;\n"
     "                  on a shared home both sides can name it)\n"
     "  --rank R --world-size K  this process is rank R of K data-parallel ranks (srun, mpirun\n"
     "                  and torchrun's variables say it without them); needs --out, shared by all\n"
     "  --rendezvous HOST:PORT  rank 0's address, as torchrun's MASTER_ADDR:MASTER_PORT\n"
     "  --quiet         no progress lines: only the result line (and errors)\n"
     "Ctrl-C stops the run cleanly (exit 130); a second Ctrl-C kills its processes. bodhi stop\n"
     "RUN_DIR ends it after the round it is in (exit 0, status stopped); bodhi set changes it.\n",
     0, BD_CMD(bd_cmd_run)},
    {"check", "check FILE [--out RUN_DIR] [--device cpu|cuda|auto] [--seed N] [--listen HOST:PORT]",
     "Checks FILE, with the options bodhi run would be given, without running or writing\n"
     "anything: lists every problem as FILE:LINE:COL: message (exit 2), or describes each\n"
     "phase: env, worlds, device, agents, their ids and what they load (exit 0).\n"
     "A run file may name an environment plugin (path/lib.so:symbol) or a Python env\n"
     "(python:module:Class, the module beside FILE or on PYTHONPATH): check, run and\n"
     "replay --verify load it, which runs its code.\n",
     0, BD_CMD(bd_cmd_check)},
    {"sweep", "sweep FILE [--seeds A..B|A,B,...] [--set PATH=V1,V2,...]... [--out SWEEP_DIR] [--slurm] [--quiet]",
     "Runs FILE over seeds and values: one run per point (a value of each --set, crossed) and seed.\n"
     "Every run file is made and checked (as bodhi check does) before anything is written; a bad\n"
     "path or value is refused (exit 2) with nothing written. SWEEP_DIR (default sweeps/<uid>)\n"
     "holds sweep.json (points, seeds, files, folders, exit codes), <point>/seed-<k>.yml (each\n"
     "run's file) and <point>/seed-<k>/ (its run folder); an earlier sweep there is moved aside.\n"
     "  --seeds S    A..B or A,B,C (default: the run file's seed alone)\n"
     "  --set PATH=V1,V2,...  values of one key, by [PHASE:]AGENT.KEY... (balancer.brain.params.\n"
     "               learning_rate; with one agent, brain.params.learning_rate), ENV_UID.KEY...\n"
     "               (pole.params.worlds), phase_config.KEY or simulation.conditions.NAME.params.KEY;\n"
     "               set in every phase that has it (PHASE: in that one); repeatable\n"
     "  --slurm      writes SWEEP_DIR/sweep.sbatch, a Slurm array of one task per run, and says how\n"
     "               to submit it, instead of running here\n"
     "  --quiet      the runs' result lines only\n"
     "Without --slurm the runs go one after another here (a failed run does not stop the others;\n"
     "exit 1 if any failed); Ctrl-C stops the running one cleanly and the sweep (exit 130),\n"
     "keeping the finished runs. bodhi replay SWEEP_DIR compares the points across their seeds.\n",
     0, BD_CMD(bd_cmd_sweep)},
    {"replay", "replay RUN_DIR|SWEEP_DIR|FILE.h5 [--csv FILE] [--verify] [--plot FILE.png|.svg] [--minari DIR]\n"
               "       [--metrics FILE.csv] [--tensorboard DIR]",
     "Tabulates a run's recorded episodes per phase and agent (a run killed mid-way is repaired\n"
     "first, and the table says how it ended).\n"
     "  --csv FILE   one row per episode: phase,agent,world,start_step,length,return,...\n"
     "  --verify     checks each episode's return against the sum of its rewards, and re-simulates\n"
     "               every recorded step from the seed and the setpoints (exit 1 if either fails)\n"
     "  --plot FILE  learning curves per phase and agent, as PNG or SVG\n"
     "  --minari DIR each trace as a Minari dataset DIR/<run>/<phase>-<agent>-v0 (never over one)\n"
     "  --metrics FILE.csv  the learner's metrics of every update in log.jsonl (losses, KL, entropy,\n"
     "               learning rate, returns, episode lengths, steps/s) against the agent's env steps:\n"
     "               phase,agent,update,steps,wall_time,metric,value\n"
     "  --tensorboard DIR   the same as TensorBoard scalars, DIR/<phase>/<agent>/events.out.tfevents.*\n"
     "               (tensorboard --logdir DIR)\n"
     "A sweep's folder (bodhi sweep's, or any folder of runs: those whose run.yml differ only in\n"
     "seed are one point) gives one row per point, phase and agent: seeds, episodes, and the mean,\n"
     "std, min and max over the seeds of each run's final return (the mean of its last 100\n"
     "episodes); --csv one row per run and one \"all\" row per point (docs/trace-format.md);\n"
     "--plot each point's mean curve with a band of one standard deviation.\n"
     "Outputs never overwrite a file of the run itself.\n",
     0, BD_CMD(bd_cmd_replay)},
    {"serve", "serve [DIR...] [--listen HOST:PORT]",
     "Serves a web page of the runs under each DIR (default runs/): a folder holding log.jsonl, or\n"
     "its subfolders (and theirs) that do. The list shows each run's status, phase, agents, steps,\n"
     "mean return and its curve; a run's page draws every metric of its updates per agent against\n"
     "the agent's env steps, and grows while the run trains; several runs compare on one page, a\n"
     "sweep's seeds (runs whose run.yml differ only in seed) as mean and spread. Nothing is\n"
     "fetched from elsewhere.\n"
     "  --listen HOST:PORT  a loopback address (default 127.0.0.1:8642; port 0: any free one). The\n"
     "               page has no TLS or credential: from another machine, use an SSH tunnel\n"
     "               (ssh -L 8642:127.0.0.1:8642 HOST).\n",
     0, BD_CMD(bd_cmd_serve)},
    {"envs", "envs", "Lists the built-in environments with their Gymnasium ids, sensors and actuators.\n", 0, BD_CMD(bd_cmd_envs)},
    {"status", "status RUN_DIR [--json]",
     "Asks a running conductor for its processes and progress, or reads a finished run's\n"
     "summary.json.\n",
     0, BD_CMD(bd_cmd_status)},
    {"set", "set RUN_DIR AGENT.PARAM=VALUE...",
     "Changes a running phase (docs/run-file.md, \"Steering a live run\"): a param an agent's brain\n"
     "can take while it learns (ppo: learning_rate, ent_coef, clip_coef, kl_threshold, ...; the\n"
     "docs list every brain's, and a refusal lists the run's), or a cap of the phase\n"
     "(phase.max_steps, phase.episodes). Values are read as the run file's. The brains take them\n"
     "before the update after the round they are collecting, for the rest of the phase;\n"
     "log.jsonl's \"set\" event says which update. Exit 2 when refused, 1 when no run answers.\n",
     0, BD_CMD(bd_cmd_set)},
    {"stop", "stop RUN_DIR [--phase]",
     "Ends the running phase cleanly at the end of its current round, with reason `stopped` (its\n"
     "checkpoints and traces written as for a step cap).\n"
     "  --phase  the run goes on with its next phase; without it, no later phase runs and\n"
     "           bodhi run exits 0 with status `stopped` in summary.json.\n",
     0, BD_CMD(bd_cmd_stop)},
    {"bench", "bench [ENV] [--device cpu|cuda|auto] [--agents N] [--steps T] [--threads K] [--json]",
     "Steps ENV (a name or Gymnasium id; default every env) with random actions and reports\n"
     "agent-steps per second against the memory-bandwidth floor.\n",
     0, BD_CMD(bd_cmd_bench)},
    {"brain", "brain --run-dir D --phase P --agent A [--parent PID] [--device D] [--tcp URL]",
     "A learner process, started by the conductor.\n", 1, BD_CMD(bd_cmd_brain)},
    {"muscle", "muscle --run-dir D --phase P --id K [--parent PID] [--device D]\n"
               "  bodhi muscle --connect HOST:PORT --credential FILE [--wait S] [--device D] [--allow-plugins]",
     "An inference worker, started by the conductor, or joining a run on another machine\n"
     "(--connect: the conductor's --listen address; --credential: the run's RUN_DIR/remote.key\n"
     "or --credential file; --wait: seconds to keep trying). Every connection is mutual TLS: a\n"
     "conductor that refuses the credential, or is not its run's, ends the muscle with exit 2.\n"
     "It loads no environment plugin or Python env the run file names (exit 2) unless\n"
     "--allow-plugins is given and the plugin's file (the Python module) is on this machine.\n",
     1, BD_CMD(bd_cmd_muscle)},
};

void bd_usage(FILE *f)
{
    fprintf(f, "bodhi %s: Brain/Muscle reinforcement-learning experiments\nusage:\n", bd_version());
    for (size_t i = 0; i < sizeof bd_usages / sizeof bd_usages[0]; i++)
        if (!bd_usages[i].internal)
            fprintf(f, "  bodhi %s\n", bd_usages[i].line);
    fprintf(f, "internal (started by the conductor, or on another machine for remote muscles):\n");
    for (size_t i = 0; i < sizeof bd_usages / sizeof bd_usages[0]; i++)
        if (bd_usages[i].internal)
            fprintf(f, "  bodhi %s\n", bd_usages[i].line);
    fprintf(f, "bodhi CMD --help says more about CMD.\n"
               "exit codes: 0 done, 1 the run failed, 2 bad input or usage, 130 interrupted, "
               "143 terminated, 129 hung up\n");
}

void bd_cmd_usage(const char *cmd, FILE *f, int detail)
{
    for (size_t i = 0; i < sizeof bd_usages / sizeof bd_usages[0]; i++)
        if (strcmp(bd_usages[i].cmd, cmd) == 0) {
            fprintf(f, "usage: bodhi %s\n", bd_usages[i].line);
            if (detail)
                fprintf(f, "%s", bd_usages[i].detail);
            return;
        }
}

int (*bd_command(const char *name))(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof bd_usages / sizeof bd_usages[0]; i++)
        if (strcmp(bd_usages[i].cmd, name) == 0)
            return bd_usages[i].fn;
    return NULL;
}
