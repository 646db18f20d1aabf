#!/usr/bin/python3
"""A CleanRL-style PPO loop (Debian's python3-torch) over bodhi.make_vec("CartPole-v1", 8):
it must reach a mean return of 475 over the last 100 finished episodes (the run files' objective_average window) within the step
budget, using the API where it matters: same-step autoreset, infos["final_obs"] to
bootstrap truncated episodes, float32 observations, integer actions. ctest `python_ppo`.
Exit 0 when it reached 475, 1 when not."""
import sys
import time

import numpy as np
import torch
import torch.nn as nn

import bodhi

N, T, EPOCHS, MINIBATCHES = 8, 128, 4, 4
GAMMA, LAM, CLIP, ENT, VF, LR, MAX_GRAD = 0.99, 0.95, 0.2, 0.01, 0.5, 2.5e-4, 0.5
BUDGET = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
torch.manual_seed(1)
np.random.seed(1)
torch.set_num_threads(1)


def layer(i, o, std=np.sqrt(2)):
    m = nn.Linear(i, o)
    nn.init.orthogonal_(m.weight, std)
    nn.init.constant_(m.bias, 0.0)
    return m


class Agent(nn.Module):
    def __init__(self, obs_dim, n_act):
        super().__init__()
        self.critic = nn.Sequential(layer(obs_dim, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, 1, 1.0))
        self.actor = nn.Sequential(layer(obs_dim, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, n_act, 0.01))

    def value(self, x):
        return self.critic(x).squeeze(-1)

    def act(self, x, a=None):
        d = torch.distributions.Categorical(logits=self.actor(x))
        if a is None:
            a = d.sample()
        return a, d.log_prob(a), d.entropy(), self.value(x)


env = bodhi.make_vec("CartPole-v1", N, seed=1)
assert env.single_observation_space.dtype == np.float32
agent = Agent(env.single_observation_space.shape[0], int(env.single_action_space.n))
opt = torch.optim.Adam(agent.parameters(), lr=LR, eps=1e-5)
obs_b = torch.zeros((T, N, 4))
act_b = torch.zeros((T, N), dtype=torch.long)
logp_b, rew_b, done_b, val_b = (torch.zeros((T, N)) for _ in range(4))
obs, _ = env.reset(seed=1)
next_obs = torch.tensor(obs)  # copies: the view is overwritten by the next step
next_done = torch.zeros(N)
ret, finished, steps, t0 = np.zeros(N), [], 0, time.time()
updates = BUDGET // (N * T)
for u in range(updates):
    for g in opt.param_groups:
        g["lr"] = LR * (1.0 - u / updates)
    for t in range(T):
        obs_b[t], done_b[t] = next_obs, next_done
        with torch.no_grad():
            a, logp, _, v = agent.act(next_obs)
        act_b[t], logp_b[t], val_b[t] = a, logp, v
        obs, r, term, trunc, infos = env.step(a.numpy())
        r = torch.tensor(r)
        if "_final_obs" in infos:  # bootstrap a truncated episode from its last observation
            m = infos["_final_obs"] & trunc
            if m.any():
                with torch.no_grad():
                    r[m] += GAMMA * agent.value(torch.tensor(infos["final_obs"][m]))
        rew_b[t] = r
        ret += 1.0
        for i in np.flatnonzero(term | trunc):
            finished.append(ret[i])
            ret[i] = 0
        next_obs, next_done = torch.tensor(obs), torch.tensor(term | trunc, dtype=torch.float32)
        steps += N
    with torch.no_grad():
        nv = agent.value(next_obs)
        adv = torch.zeros((T, N))
        last = 0
        for t in reversed(range(T)):
            nonterm = 1.0 - (next_done if t == T - 1 else done_b[t + 1])
            nval = nv if t == T - 1 else val_b[t + 1]
            delta = rew_b[t] + GAMMA * nval * nonterm - val_b[t]
            adv[t] = last = delta + GAMMA * LAM * nonterm * last
        rets = adv + val_b
    bo, ba, bl, badv, bret, bv = (x.reshape(T * N, *x.shape[2:]) for x in (obs_b, act_b, logp_b, adv, rets, val_b))
    idx = np.arange(T * N)
    for _ in range(EPOCHS):
        np.random.shuffle(idx)
        for s in range(0, T * N, T * N // MINIBATCHES):
            mb = idx[s:s + T * N // MINIBATCHES]
            _, nlp, ent, nv2 = agent.act(bo[mb], ba[mb])
            ratio = (nlp - bl[mb]).exp()
            ma = (badv[mb] - badv[mb].mean()) / (badv[mb].std() + 1e-8)
            pg = torch.max(-ma * ratio, -ma * ratio.clamp(1 - CLIP, 1 + CLIP)).mean()
            vl = 0.5 * ((nv2 - bret[mb]) ** 2).mean()
            loss = pg - ENT * ent.mean() + VF * vl
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), MAX_GRAD)
            opt.step()
    mean100 = float(np.mean(finished[-100:])) if len(finished) >= 100 else 0.0
    if u % 20 == 0:
        print(f"update {u}: {steps} steps, {len(finished)} episodes, mean return (last 100) {mean100:.1f},"
              f" {time.time() - t0:.0f} s", flush=True)
    if mean100 >= 475:
        print(f"reached mean return {mean100:.1f} over the last 100 episodes after {steps} steps"
              f" ({time.time() - t0:.0f} s)")
        sys.exit(0)
print(f"not reached: mean return {mean100:.1f} after {steps} steps")
sys.exit(1)
