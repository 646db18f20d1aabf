"""bodhi.open_run and bodhi.load_policy on a fresh short run of `bodhi run` (BODHI_BINARY):
the trace read as NumPy and pandas against h5py, and the checkpoint's greedy actions
against those the muscle took in the run's test phase."""

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


class Trace(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="bodhi-pytrace-")
        with open(os.path.join(cls.dir, "run.yml"), "w") as f:
            f.write(RUN_FILE)
        r = subprocess.run([os.environ["BODHI_BINARY"], "run", "run.yml"], cwd=cls.dir, capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"bodhi run failed ({r.returncode}): {r.stderr[-2000:]}")
        cls.run_dir = os.path.join(cls.dir, "runs", "py-trace")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

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
        mine = pi(obs.reshape(-1, 4)).reshape(act.shape)
        np.testing.assert_array_equal(mine, act.astype(np.int64))
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


if __name__ == "__main__":
    unittest.main()
