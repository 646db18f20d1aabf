"""bodhi.open_run and bodhi.load_policy on fresh short runs of `bodhi run` (BODHI_BINARY):
the trace read as NumPy and pandas against h5py, and the checkpoint's greedy actions
against those the muscle took in the run's test phase, for a ppo, a dqn and a sac brain."""

import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import bodhi

RUN_FILE = """
uid: py-trace
seed: 7
version: 1
schedule:
  - train:
      environments:
        - environment: {name: cartpole, uid: pole, params: {worlds: 8}}
      agents:
        - name: balancer
          brain: {name: ppo, params: {hidden: 32}}
          muscle: {name: ppo, params: {}}
          objective: {name: reward, params: {}}
          sensors: [pole.*]
          actuators: [pole.push]
      simulation:
        name: vanilla
        conditions:
          - {name: max_steps, params: {steps: 8192}}
      phase_config: {mode: train, worker: 1, device: cpu}
  - test:
      phase_config: {mode: test, worker: 1, episodes: 8}
run_config:
  condition: {name: all_phases, params: {}}
"""


def by_step(pi, obs):
    """pi's greedy actions for a trace's observations (steps, columns, sensors), one step's
    columns at a time as the muscle computed them: libtorch's and OpenBLAS's sums may
    depend on how many rows a product has, so other batches can differ in a last bit."""
    return np.stack([pi(o) for o in obs])


class RunOnce(unittest.TestCase):
    """A test class over one `bodhi run` of RUN (its uid UID) in a temporary folder."""
    RUN = UID = None

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix=f"bodhi-{cls.UID}-")
        with open(os.path.join(cls.dir, "run.yml"), "w") as f:
            f.write(cls.RUN)
        r = subprocess.run([os.environ["BODHI_BINARY"], "run", "run.yml"], cwd=cls.dir, capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0:
            shutil.rmtree(cls.dir, ignore_errors=True)  # tearDownClass does not follow a failed set-up
            raise RuntimeError(f"bodhi run failed ({r.returncode}): {r.stderr[-2000:]}")
        cls.run_dir = os.path.join(cls.dir, "runs", cls.UID)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)


class Trace(RunOnce):
    RUN, UID = RUN_FILE, "py-trace"

    def test_open_run(self):
        import h5py
        with bodhi.open_run(self.run_dir) as run:
            self.assertEqual(run.phases, ["train", "test"])
            self.assertEqual(run.seed, 7)
            self.assertEqual(run.agents("train"), ["balancer"])
            a = run["train"]["balancer"]
            self.assertEqual(a.sensor_ids, ["pole.x", "pole.x_dot", "pole.theta", "pole.theta_dot"])
            self.assertEqual(a.env, "cartpole")
            with h5py.File(os.path.join(self.run_dir, "run.h5"), "r") as f:
                g = f["train/balancer"]
                raw_eps = g["episodes"][:]
                np.testing.assert_array_equal(a.rewards[:], g["rewards"][:])
                np.testing.assert_array_equal(a.arrays(-5)["sensors"], g["sensors"][-5:])
            eps = a.episodes
            self.assertEqual(len(eps), len(raw_eps))
            np.testing.assert_array_equal(eps["return"].to_numpy(), raw_eps["return"])
            # an episode's return is the sum of its rewards in the step arrays
            e = eps.iloc[0]
            s, L, w = int(e["start_step"]), int(e["length"]), int(e["world"])
            self.assertAlmostEqual(float(a.rewards[s:s + L, w].sum()), float(e["return"]), places=3)
            df = a.last(100, world=3)
            self.assertEqual(len(df), 100)
            self.assertEqual(list(df.columns[:3]), ["step", "world", "pole.x"])
            self.assertTrue((df["world"] == 3).all())
            self.assertEqual(int(df["step"].iloc[-1]), a.steps - 1)
            np.testing.assert_array_equal(df["pole.theta"].to_numpy(), a.sensors[-100:, 3, 2])
            self.assertEqual(len(a.last(10)), 10 * a.columns)

    def test_bad_paths(self):
        with self.assertRaisesRegex(FileNotFoundError, "no run.h5"):
            bodhi.open_run(os.path.join(self.dir, "nope"))
        with bodhi.open_run(self.run_dir) as run:
            with self.assertRaisesRegex(KeyError, "no phase 'eval'"):
                run.agents("eval")
            with self.assertRaisesRegex(KeyError, "no agent 'pilot'"):
                run.agent("train", "pilot")
            with self.assertRaisesRegex(IndexError, "columns 0..7"):
                run.agent("train", "balancer").last(5, world=8)
        with self.assertRaisesRegex(FileNotFoundError, "no checkpoint of agent 'pilot'"):
            bodhi.load_policy(self.run_dir, "pilot")
        # files of the run that are not its run.h5: said so, not HDF5's or h5py's own error
        with self.assertRaisesRegex(OSError, "run.yml is not a run's run.h5"):
            bodhi.open_run(os.path.join(self.run_dir, "run.yml"))
        agent_file = os.path.join(self.run_dir, "memory", "train.balancer.h5")
        with self.assertRaisesRegex(ValueError, "is not a run's run.h5 .no phases or seed"):
            bodhi.open_run(agent_file)

    def test_policy_acts_as_the_muscle(self):
        pi = bodhi.load_policy(self.run_dir, "balancer")
        self.assertEqual((pi.phase, pi.hidden, pi.layers, pi.discrete), ("train", 32, 2, True))
        with bodhi.open_run(self.run_dir) as run:
            t = run.agent("test", "balancer")  # the test phase acts greedily with the train checkpoint
            obs, act = t.sensors[:], t.actuators[:, :, 0]
        np.testing.assert_array_equal(by_step(pi, obs), act.astype(np.int64))
        logits, values = pi.forward(obs[0])
        self.assertEqual((logits.shape, values.shape), ((obs.shape[1], 2), (obs.shape[1],)))
        sampled = pi(obs[0], greedy=False, rng=np.random.default_rng(1))
        self.assertTrue(np.all((sampled == 0) | (sampled == 1)))
        with self.assertRaisesRegex(ValueError, r"shape \(n, 4\)"):
            pi(np.zeros((3, 5), np.float32))
        with self.assertRaisesRegex(ValueError, r"shape \(n, 4\), got \(4,\) \(one observation: obs\[None\]\)"):
            pi(np.zeros(4, np.float32))
        with self.assertRaisesRegex(ValueError, "NaN or infinite"):  # it chose action 0 in silence
            pi(np.full((2, 4), np.nan, np.float32))
        with self.assertRaisesRegex(ValueError, "checkpoint"):
            bodhi.load_policy(self.run_dir, "balancer", hidden=16)  # not the network it saved


# A dqn brain on CartPole and a sac brain on Pendulum: short train phases (their gradient
# steps start at 2048 transitions, the buffer's learning_starts set low) and greedy tests.
OFF_POLICY = """
uid: py-offpolicy
seed: 3
version: 1
schedule:
  - train:
      environments:
        - environment: {name: cartpole, uid: pole, params: {worlds: 8}}
        - environment: {name: pendulum, uid: pend, params: {worlds: 8}}
      agents:
        - name: balancer
          brain: {name: dqn, params: {learning_starts: 512}}
          muscle: {name: dqn, params: {}}
          objective: {name: reward, params: {}}
          sensors: [pole.*]
          actuators: [pole.push]
        - name: swinger
          brain: {name: sac, params: {hidden: 48, learning_starts: 512, rollout_steps: 32}}
          muscle: {name: sac, params: {}}
          objective: {name: reward, params: {}}
          sensors: [pend.*]
          actuators: [pend.torque]
      simulation:
        name: vanilla
        conditions:
          - {name: max_steps, params: {steps: 4096}}
      phase_config: {mode: train, worker: 1, device: cpu}
  - test:
      phase_config: {mode: test, worker: 1, episodes: 8}
run_config:
  condition: {name: all_phases, params: {}}
"""


class OffPolicy(RunOnce):
    RUN, UID = OFF_POLICY, "py-offpolicy"

    def test_muscle_actions(self):
        """every greedy action of each test-phase muscle, from the train phase's checkpoint"""
        with bodhi.open_run(self.run_dir) as run:
            pole, pend = run.agent("test", "balancer"), run.agent("test", "swinger")
            obs_q, act_q = pole.sensors[:], pole.actuators[:, :, 0]
            obs_s, act_s = pend.sensors[:], pend.actuators[:, :, 0]
        q = bodhi.load_policy(self.run_dir, "balancer")
        self.assertEqual((q.brain, q.phase, q.hidden, q.layers, q.discrete), ("dqn", "train", 64, 2, True))
        np.testing.assert_array_equal(by_step(q, obs_q), act_q.astype(np.int64))
        values, best = q.forward(obs_q[0])
        np.testing.assert_array_equal(best, values.max(axis=1))  # a Q-network's value is its largest Q
        pi = bodhi.load_policy(self.run_dir, "swinger")
        self.assertEqual((pi.brain, pi.hidden, pi.discrete), ("sac", 48, False))  # the file's shape
        mine = by_step(pi, obs_s)[:, :, 0]
        # tanh(mean) scaled into [-2, 2], in double and rounded once as the muscle does; libm's
        # tanh and NumPy's may differ in their last bit of a double, so one float ulp apart
        np.testing.assert_array_max_ulp(mine, act_s, maxulp=1)
        self.assertTrue(np.all(np.abs(mine) <= 2.0))
        out, v = pi.forward(obs_s[0])
        self.assertEqual(out.shape, (obs_s.shape[1], 2))  # a mean and a raw log std
        np.testing.assert_array_equal(v, 0)

    def test_sampling(self):
        q = bodhi.load_policy(self.run_dir, "balancer")
        obs = np.zeros((4000, 4), np.float32)
        greedy = q(obs)
        self.assertEqual(len(set(greedy.tolist())), 1)
        every = q(obs, greedy=False, rng=np.random.default_rng(2), epsilon=1.0)  # uniform
        self.assertTrue(1800 < int((every == 0).sum()) < 2200)
        np.testing.assert_array_equal(q(obs, greedy=False, epsilon=0.0), greedy)
        with self.assertRaisesRegex(ValueError, "epsilon 1.5 is not a probability"):
            q(obs, greedy=False, epsilon=1.5)
        with self.assertRaisesRegex(ValueError, "epsilon is for sampling .* acting greedily"):
            q(obs, epsilon=0.1)  # would have been ignored
        np.testing.assert_array_equal(q(obs, greedy=False, rng=5, epsilon=0.5),  # a seed for a generator
                                      q(obs, greedy=False, rng=np.random.default_rng(5), epsilon=0.5))
        pi = bodhi.load_policy(self.run_dir, "swinger")
        a = pi(np.tile(np.float32([1, 0, 0]), (4000, 1)), greedy=False, rng=np.random.default_rng(3))
        self.assertTrue(np.all(np.abs(a) <= 2.0))
        self.assertGreater(float(a.std()), 0.01)
        with self.assertRaisesRegex(ValueError, "epsilon is for sampling a dqn brain's Q-network .* a sac brain's"):
            pi(np.zeros((1, 3), np.float32), greedy=False, epsilon=0.1)

    def test_wrong_checkpoints(self):
        with self.assertRaisesRegex(ValueError, "holds a dqn brain's network .* 2 x 64 hidden; .* was asked"):
            bodhi.load_policy(self.run_dir, "balancer", hidden=32)
        # the other agent's checkpoint where this one's belongs: named, with both shapes
        ck = os.path.join(self.run_dir, "checkpoints", "train")
        work = tempfile.mkdtemp(prefix="bodhi-pyoff-ck-")
        try:
            run = os.path.join(work, "run")
            shutil.copytree(self.run_dir, run, ignore=shutil.ignore_patterns("*.lock"))
            shutil.copy(os.path.join(ck, "swinger.pt"), os.path.join(run, "checkpoints", "train", "balancer.pt"))
            with self.assertRaisesRegex(ValueError, "holds a sac brain's network of 3 sensors .* agent 'balancer'"
                                                    " of phase 'train' has 4 sensors and 2 actions"):
                bodhi.load_policy(run, "balancer")
            # cut short: the file's own check refuses it
            with open(os.path.join(ck, "swinger.pt"), "rb") as f:
                data = f.read()
            with open(os.path.join(run, "checkpoints", "train", "swinger.pt"), "wb") as f:
                f.write(data[:len(data) // 2])
            with self.assertRaisesRegex(ValueError, "checkpoint .*swinger.pt: .*not a bodhi checkpoint"):
                bodhi.load_policy(run, "swinger")
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
