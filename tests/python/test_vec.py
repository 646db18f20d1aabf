"""bodhi.make_vec against Gymnasium 1.x's VectorEnv API and against the env engine itself
(libbodhi_env.so through ctypes): run by ctest (`ctest -R python`) with /usr/bin/python3,
PYTHONPATH=build/python and BODHI_ENV_LIB set."""

import ctypes
import os
import subprocess
import sys
import unittest

import numpy as np

import bodhi


class Batch(ctypes.Structure):
    """bd_env_batch (include/bodhi/env_abi.h), the fields read here."""
    _fields_ = [("n", ctypes.c_int), ("members", ctypes.c_int), ("obs_dim", ctypes.c_int),
                ("act_dim", ctypes.c_int), ("state_dim", ctypes.c_int), ("scratch_dim", ctypes.c_int),
                ("obs", ctypes.POINTER(ctypes.c_float)), ("actions", ctypes.POINTER(ctypes.c_float)),
                ("rewards", ctypes.POINTER(ctypes.c_float)), ("terminated", ctypes.POINTER(ctypes.c_uint8)),
                ("truncated", ctypes.POINTER(ctypes.c_uint8)), ("final_obs", ctypes.POINTER(ctypes.c_float))]


def engine():
    lib = ctypes.CDLL(os.environ["BODHI_ENV_LIB"])
    lib.bd_env_find.restype = ctypes.c_void_p
    lib.bd_env_find.argtypes = [ctypes.c_char_p]
    lib.bd_env_create.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.bd_env_batch_of.restype = ctypes.POINTER(Batch)
    lib.bd_env_batch_of.argtypes = [ctypes.c_void_p]
    lib.bd_env_step.argtypes = [ctypes.c_void_p]
    lib.bd_env_reset.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    lib.bd_env_destroy.argtypes = [ctypes.c_void_p]
    return lib


class ApiShape(unittest.TestCase):
    def test_spaces_and_dtypes(self):
        env = bodhi.make_vec("CartPole-v1", 16, seed=1)
        self.assertEqual(env.num_envs, 16)
        self.assertEqual(env.single_observation_space.shape, (4,))
        self.assertEqual(env.observation_space.shape, (16, 4))
        self.assertEqual(env.single_observation_space.dtype, np.float32)
        self.assertEqual(int(env.single_action_space.n), 2)
        self.assertEqual(env.action_space.shape, (16,))
        self.assertEqual(env.metadata["autoreset_mode"].value, "SameStep")
        obs, infos = env.reset(seed=5)
        self.assertEqual((obs.shape, obs.dtype), ((16, 4), np.float32))
        self.assertEqual(infos, {})
        self.assertTrue(env.single_observation_space.contains(obs[0]))
        obs, rew, term, trunc, infos = env.step(env.action_space.sample())
        self.assertEqual((rew.shape, term.shape, trunc.shape), ((16,), (16,), (16,)))
        self.assertEqual((rew.dtype, term.dtype, trunc.dtype), (np.float32, np.bool_, np.bool_))
        np.testing.assert_array_equal(rew, np.ones(16, np.float32))
        pend = bodhi.make_vec("pendulum", 3)  # a bodhi name works too
        self.assertEqual(pend.single_action_space.shape, (1,))
        self.assertEqual(float(pend.single_action_space.high[0]), 2.0)
        pend.step(np.zeros((3, 1), np.float32))
        pend.step(np.zeros(3))  # (N,) for a one-column Box, any real dtype

    def test_params_by_name(self):
        env = bodhi.make_multi("tag", 2, runners=3, taggers=2, seed=4)
        self.assertEqual(env.bodhi_spec["params"]["runners"], 3.0)
        self.assertEqual(env.members, {"runner": 3, "tagger": 2})


class SameNumbersAsEngine(unittest.TestCase):
    def test_trajectory_bitwise(self):
        lib = engine()
        n, seed, steps = 64, 1234, 300
        desc = lib.bd_env_find(b"cartpole")
        h = ctypes.c_void_p()
        self.assertEqual(lib.bd_env_create(desc, n, 0, seed, 0, 0, None, ctypes.byref(h)), 0)
        b = lib.bd_env_batch_of(h).contents
        env = bodhi.make_vec("CartPole-v1", n, seed=seed, threads=2)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(7)
        ended = 0
        try:
            for t in range(steps):
                ref = np.ctypeslib.as_array(b.obs, (n, 4))
                np.testing.assert_array_equal(obs, ref, err_msg=f"step {t}")
                act = rng.integers(0, 2, n)
                np.ctypeslib.as_array(b.actions, (n,))[:] = act
                self.assertEqual(lib.bd_env_step(h), 0)
                obs, rew, term, trunc, infos = env.step(act)
                np.testing.assert_array_equal(rew, np.ctypeslib.as_array(b.rewards, (n,)))
                np.testing.assert_array_equal(term, np.ctypeslib.as_array(b.terminated, (n,)) != 0)
                np.testing.assert_array_equal(trunc, np.ctypeslib.as_array(b.truncated, (n,)) != 0)
                if infos:
                    m = infos["_final_obs"]
                    ended += int(m.sum())
                    np.testing.assert_array_equal(infos["final_obs"][m],
                                                  np.ctypeslib.as_array(b.final_obs, (n, 4))[m])
        finally:
            lib.bd_env_destroy(h)
        self.assertGreater(ended, 0)  # the comparison covered autoresets


class Autoreset(unittest.TestCase):
    def test_same_step_final_obs(self):
        env = bodhi.make_vec("CartPole-v1", 32, seed=3)
        obs, _ = env.reset()
        prev = obs.copy()
        seen = 0
        for _ in range(200):
            obs, rew, term, trunc, infos = env.step(np.ones(32, np.int64))  # always push right: falls
            done = term | trunc
            if not done.any():
                self.assertEqual(infos, {})
                prev = obs.copy()
                continue
            m = infos["_final_obs"]
            np.testing.assert_array_equal(m, done)
            np.testing.assert_array_equal(infos["_final_info"], done)
            fin = infos["final_obs"][m]
            # ended by CartPole-v1's rule: |x| > 2.4 or |theta| > 12 degrees
            self.assertTrue(np.all((np.abs(fin[:, 0]) > 2.4) | (np.abs(fin[:, 2]) > 0.2094395)))
            # the obs returned for them is the next episode's first (Gymnasium draws U(-0.05, 0.05))
            self.assertTrue(np.all(np.abs(obs[m]) <= 0.05))
            # the last observation follows from the one before it (small steps)
            self.assertTrue(np.all(np.abs(fin[:, 0] - prev[m, 0]) < 0.1))
            seen += int(m.sum())
            prev = obs.copy()
        self.assertGreaterEqual(seen, 32)

    def test_truncation_vs_termination(self):
        env = bodhi.make_vec("CartPole-v1", 8, seed=1, max_steps=5)
        env.reset()
        alt = np.tile([0, 1], 4)
        for t in range(5):
            obs, rew, term, trunc, infos = env.step(alt if t % 2 else 1 - alt)
        self.assertTrue(trunc.all())
        self.assertFalse(term.any())
        self.assertTrue(infos["_final_obs"].all())
        env2 = bodhi.make_vec("CartPole-v1", 8, seed=1)
        o2, _ = env2.reset()
        for t in range(5):
            o2, *_ = env2.step(alt if t % 2 else 1 - alt)
        np.testing.assert_array_equal(infos["final_obs"], o2)  # the time limit's last obs


class Views(unittest.TestCase):
    def test_no_copy_per_step(self):
        env = bodhi.make_vec("CartPole-v1", 4, seed=2)
        obs0, _ = env.reset()
        snap = obs0.copy()
        obs1, rew1, *_ = env.step(np.zeros(4, np.int64))
        self.assertIs(obs1, obs0)
        self.assertTrue(np.shares_memory(obs1, env._core.view("obs")))
        self.assertFalse(np.array_equal(obs0, snap))  # overwritten in place by the step
        self.assertFalse(obs1.flags.writeable)
        with self.assertRaises(ValueError):
            obs1[0, 0] = 1.0

    def test_views_outlive_close(self):
        env = bodhi.make_vec("CartPole-v1", 4, seed=2)
        obs, _ = env.reset()
        keep = obs.copy()
        env.close()
        del env
        np.testing.assert_array_equal(obs, keep)  # still readable: the buffer lives with its views


class Seeding(unittest.TestCase):
    def run_env(self, seed, reset_seed=None, n=16, steps=50):
        env = bodhi.make_vec("Acrobot-v1", n, seed=seed)
        obs, _ = env.reset(seed=reset_seed)
        out = [obs.copy()]
        act = np.arange(n) % 3
        for _ in range(steps):
            out.append(env.step(act)[0].copy())
        return np.stack(out)

    def test_same_seed_same_arrays(self):
        np.testing.assert_array_equal(self.run_env(9), self.run_env(9))
        np.testing.assert_array_equal(self.run_env(0, reset_seed=9), self.run_env(9))
        self.assertFalse(np.array_equal(self.run_env(9), self.run_env(10)))

    def test_reset_without_seed_is_deterministic_and_new(self):
        a, b = bodhi.make_vec("CartPole-v1", 8, seed=1), bodhi.make_vec("CartPole-v1", 8, seed=1)
        first = a.reset()[0].copy()
        second = a.reset()[0].copy()
        self.assertFalse(np.array_equal(first, second))  # a new episode per reset
        np.testing.assert_array_equal(b.reset()[0], first)
        np.testing.assert_array_equal(b.reset()[0], second)  # the same sequence of seeds
        threads = [bodhi.make_vec("CartPole-v1", 64, seed=5, threads=t) for t in (1, 2)]
        for e in threads:
            e.reset()
        act = np.arange(64) % 2
        for _ in range(30):
            r = [e.step(act)[0].copy() for e in threads]
            np.testing.assert_array_equal(r[0], r[1])  # the thread count changes nothing


class BadInput(unittest.TestCase):
    def test_errors_name_the_thing(self):
        cases = [
            (lambda: bodhi.make_vec("CartPole-v9", 2), ValueError, "unknown environment 'CartPole-v9'"),
            (lambda: bodhi.make_vec("cartpole", 0), ValueError, "num_envs"),
            (lambda: bodhi.make_vec("cartpole", 2.5), TypeError, "num_envs"),
            (lambda: bodhi.make_vec("cartpole", 2, seed=-1), ValueError, "seed"),
            (lambda: bodhi.make_vec("cartpole", 2, seed="x"), TypeError, "seed"),
            (lambda: bodhi.make_vec("cartpole", 2, device="tpu"), ValueError, "device"),
            (lambda: bodhi.make_vec("cartpole", 2, threads=-1), ValueError, "threads"),
            (lambda: bodhi.make_vec("cartpole", 2, gravity=3), ValueError, "no param 'gravity'"),
            (lambda: bodhi.make_multi("tag", 2, runners=0), ValueError, "runners"),
            (lambda: bodhi.make_multi("tag", 2, runners="many"), TypeError, "runners"),
            (lambda: bodhi.make_vec("tag", 2), ValueError, "make_multi"),
            (lambda: bodhi.make_vec("/nonexistent/lib.so:desc", 2), ValueError, "/nonexistent/lib.so"),
            (lambda: bodhi.make_vec("cartpole", 2, worlds=5), TypeError, "give them as make_vec's num_envs"),
            (lambda: bodhi.make_vec("cartpole", 2, max_steps=2**40), ValueError, "max_steps must be from 0"),
            (lambda: bodhi.make_vec("cartpole", 2, threads=2**40), ValueError, "threads must be from 0"),
        ]
        for fn, exc, text in cases:
            with self.assertRaises(exc, msg=text) as cm:
                fn()
            self.assertIn(text, str(cm.exception))

    def test_bad_actions(self):
        env = bodhi.make_vec("CartPole-v1", 4, seed=2)
        pend = bodhi.make_vec("Pendulum-v1", 4, seed=2)
        cases = [
            (env, np.zeros(3, np.int64), ValueError, "expected shape (4,)"),
            (env, np.zeros((4, 2), np.int64), ValueError, "got (4, 2)"),
            (env, np.zeros(4), TypeError, "integers"),
            (env, np.array([0, 1, 2, 0]), ValueError, "action 2"),
            (env, np.array([0, -1, 1, 0]), ValueError, "action -1"),
            (env, np.array(["a"] * 4), TypeError, "dtype"),
            (env, None, TypeError, "integers"),
            (env, 1, ValueError, "expected shape"),
            (pend, np.zeros((4, 2), np.float32), ValueError, "expected shape (4, 1)"),
            (pend, np.array([0, np.nan, 0, 0], np.float32), ValueError, "not a finite number"),
            (pend, np.array([0, np.inf, 0, 0]), ValueError, "not a finite number"),
            (pend, np.zeros(4, complex), TypeError, "real numbers"),
        ]
        for e, act, exc, text in cases:
            with self.assertRaises(exc, msg=f"{act!r}") as cm:
                e.step(act) if act is not None else e._core.set_actions(0, object())
            self.assertIn(text, str(cm.exception))
        # an unsigned past int64 is named as it is (it read as negative); a real past float's
        # range is clipped like any other out of the bounds (it read as "not a finite number")
        with self.assertRaisesRegex(ValueError, "action 9223372036854775808 of env cartpole"):
            env.step(np.full(4, 2**63, dtype=np.uint64))
        _, rew, *_ = pend.step(np.array([1e300, -1e300, 0, 0]))
        self.assertTrue(np.isfinite(rew).all())
        for e in (env, pend):  # not the last step's actions again, in silence
            with self.assertRaisesRegex(TypeError, "needs every world's actions, got None"):
                e.step(None)
        env.step(np.zeros(4, np.int32))  # still usable, other integer dtypes accepted
        env.step([0, 1, 0, 1])

    def test_closed_env(self):
        env = bodhi.make_vec("CartPole-v1", 4)
        env.close()
        env.close()  # twice is fine
        for fn in (lambda: env.step(np.zeros(4, np.int64)), lambda: env.reset(seed=1)):
            with self.assertRaisesRegex(RuntimeError, "closed"):
                fn()

    def test_cuda(self):
        """device="cuda": a clear error without a GPU; with one, the CPU's numbers."""
        try:
            gpu = bodhi.make_vec("CartPole-v1", 256, seed=4, device="cuda")
        except RuntimeError as e:
            self.assertIn("device='cuda'", str(e))
            self.assertIn("GPU", str(e))
            return
        cpu = bodhi.make_vec("CartPole-v1", 256, seed=4)
        act = np.arange(256) % 2
        for e in (gpu, cpu):
            e.reset(seed=4)
        for _ in range(100):
            og, rg, tg, ug, ig = gpu.step(act)
            oc, rc, tc, uc, ic = cpu.step(act)
            np.testing.assert_array_equal(og, oc)
            np.testing.assert_array_equal(tg | ug, tc | uc)

    def test_seed_list_refused(self):
        env = bodhi.make_vec("CartPole-v1", 2)
        with self.assertRaisesRegex(TypeError, "one int"):
            env.reset(seed=[1, 2])


class WithoutGymnasium(unittest.TestCase):
    def test_fallback_spaces(self):
        code = ("import sys; sys.modules['gymnasium'] = None\n"
                "import numpy as np, bodhi\n"
                "assert not bodhi.HAVE_GYMNASIUM\n"
                "e = bodhi.make_vec('CartPole-v1', 5, seed=1)\n"
                "s = e.single_observation_space; a = e.single_action_space\n"
                "assert s.shape == (4,) and s.dtype == np.float32 and np.isinf(s.high[1]) and s.high[0] == np.float32(4.8)\n"
                "assert a.n == 2 and a.contains(a.sample()) and not a.contains(2)\n"
                "assert e.action_space.shape == (5,) and e.action_space.contains(e.action_space.sample())\n"
                "o, _ = e.reset(seed=1); o, r, te, tr, i = e.step(e.action_space.sample())\n"
                "p = bodhi.make_vec('Pendulum-v1', 2).single_action_space\n"
                "x = p.sample(); assert p.contains(x) and x.dtype == np.float32 and p.low[0] == -2\n"
                "try:\n    bodhi.register()\nexcept ImportError as ex:\n    print('ok', ex)\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok bodhi.register needs Gymnasium", r.stdout)

    @unittest.skipUnless(bodhi.HAVE_GYMNASIUM, "Gymnasium 1.x not importable")
    def test_gymnasium_make_vec(self):
        import gymnasium
        bodhi.register()
        env = gymnasium.make_vec("bodhi/CartPole-v1", num_envs=4)
        self.assertIsInstance(env, gymnasium.vector.VectorEnv)
        self.assertIsInstance(env.single_observation_space, gymnasium.spaces.Box)
        env.reset(seed=1)
        env.step(env.action_space.sample())


class ManyAgents(unittest.TestCase):
    def test_tag_groups(self):
        W = 6
        env = bodhi.make_multi("tag", W, seed=3, runners=4, taggers=2)
        obs, _ = env.reset(seed=3)
        self.assertEqual(env.groups, ["runner", "tagger"])
        od = env.observation_spaces["runner"].shape[0]
        self.assertEqual(obs["runner"].shape, (W, 4, od))
        self.assertEqual(obs["tagger"].shape, (W, 2, od))
        rows = env._core.view("obs")
        # group views are the rows of the batch, world-major: runners first, then taggers
        np.testing.assert_array_equal(obs["tagger"][2, 1], rows[2 * 6 + 4 + 1, :od])
        acts = {"runner": np.zeros((W, 4, 2), np.float32), "tagger": np.full((W, 2, 2), 0.5, np.float32)}
        obs, rew, term, trunc, infos = env.step(acts)
        self.assertEqual(rew["runner"].shape, (W, 4))
        self.assertEqual(term["tagger"].dtype, np.bool_)
        act_rows = env._core.view("actions")
        np.testing.assert_array_equal(act_rows[6 * 3 + 4: 6 * 3 + 6], 0.5)
        with self.assertRaisesRegex(ValueError, "missing"):
            env.step({"runner": acts["runner"]})
        with self.assertRaisesRegex(ValueError, r"group tagger.*expected shape \(6, 2, 2\)"):
            env.step({"runner": acts["runner"], "tagger": np.zeros((W, 3, 2), np.float32)})
        # the same worlds stepped alone in one-world envs give the same numbers
        one = bodhi.make_multi("tag", W, seed=3, runners=4, taggers=2, threads=2)
        one.reset(seed=3)
        o2 = one.step(acts)[0]
        np.testing.assert_array_equal(o2["runner"], obs["runner"])

    def test_parallel_env(self):
        pz = bodhi.parallel_env("tag", seed=1, runners=3, taggers=1, max_steps=4)
        self.assertEqual(pz.possible_agents, ["runner_0", "runner_1", "runner_2", "tagger_0"])
        obs, infos = pz.reset(seed=1)
        self.assertEqual(set(obs), set(pz.agents))
        self.assertTrue(pz.observation_space("runner_1").contains(obs["runner_1"]))
        for t in range(4):
            obs, rew, term, trunc, infos = pz.step({a: pz.action_space(a).sample() for a in pz.agents})
        self.assertTrue(all(trunc.values()))
        self.assertIn("final_obs", infos["tagger_0"])
        self.assertIsInstance(rew["runner_0"], float)
        # every agent acts at every step, each with an action of its space's shape: an agent
        # left out kept its last action, a scalar filled both of a runner's actuators
        whole = {a: np.zeros(2, np.float32) for a in pz.agents}
        for bad, says in (({}, "missing ['runner_0'"), ({**whole, "runner_0": np.float32(7)}, "has shape ()"),
                          ({**whole, "runner_0": np.zeros(3)}, "has shape (3,)"),
                          ({**whole, "x_1": 0}, "unknown ['x_1']"),
                          ([0], "must be a dict")):
            with self.assertRaises((ValueError, TypeError)) as e:
                pz.step(bad)
            self.assertIn(says, str(e.exception))


if __name__ == "__main__":
    unittest.main()
