"""Optimizers compiled into the training step, learning-rate schedules, and L-BFGS.

A first-order optimizer turns a loss into parameter updates made of graph ops,
so forward, backward and update run in one compiled call::

    opt = xg.optim.Adam([w, b], lr=1e-3)
    step = g.compile(loss, updates=opt)          # or updates=opt.minimize(loss)
    for X, T in batches:
        l = step(x=X, t=T)

Their state (moments, the step count) is kept as graph params, so it is saved
with the model. The arithmetic follows torch.optim step for step.

Options shared by all of them: ``lr``, ``weight_decay`` (L2 added to the
gradient; AdamW decouples it), ``l1``, ``clip_value`` (clip each gradient
element), ``clip_norm`` (scale all gradients to a global L2 norm at most this),
``schedule`` (see step_lr, exponential_lr, cosine_lr), ``warmup_steps`` and
``warmup_start`` (a linear warm-up factor from warmup_start to 1).
"""
import numpy as np

from . import _xgrad

__all__ = ["SGD", "Adam", "AdamW", "RMSProp", "AdaGrad", "LBFGS", "step_lr", "exponential_lr", "cosine_lr"]


def step_lr(step_size, gamma=0.1):
    """lr * gamma ** (t // step_size), as torch's StepLR stepped every optimizer step."""
    return {"kind": "step", "step_size": step_size, "gamma": gamma}


def exponential_lr(gamma):
    """lr * gamma ** t (ExponentialLR)."""
    return {"kind": "exponential", "gamma": gamma}


def cosine_lr(t_max, lr_min=0.0):
    """lr_min + (lr - lr_min) * (1 + cos(pi * t / t_max)) / 2, as CosineAnnealingLR (it rises again after t_max)."""
    return {"kind": "cosine", "t_max": t_max, "lr_min": lr_min}


class _Compiled:
    """A first-order optimizer: the updates come from C++ builders (autodiff/optim.h)."""

    _kind = None

    def __init__(self, params, **options):
        self._impl = _xgrad._make_optimizer(self._kind, list(params), options)

    def minimize(self, loss, allreduce=None, bucket_bytes=1 << 20):
        """(param, new value) pairs for the gradients of loss: pass them to compile(..., updates=...).

        allreduce="mean" (data-parallel training, see xgrad.distributed): each gradient is averaged over all
        processes before the update ("sum": summed), in buckets of about bucket_bytes whose reductions run
        while the rest of the backward pass is computed (print(program) lists them)."""
        return self._impl.minimize(loss, allreduce, bucket_bytes)

    def apply(self, grads):
        """Update pairs from given gradient nodes (one per param)."""
        return self._impl.apply(list(grads))

    @property
    def params(self):
        return self._impl.params

    @property
    def state(self):
        """The optimizer's own params (step count, moments): save them to resume training."""
        return self._impl.state

    def learning_rate(self):
        """The learning rate of the next step, as a node (compile it to read it)."""
        return self._impl.learning_rate()


def _common(lr, weight_decay, l1, clip_value, clip_norm, schedule, warmup_steps, warmup_start):
    return dict(lr=lr, weight_decay=weight_decay, l1=l1, clip_value=clip_value, clip_norm=clip_norm, schedule=schedule,
                warmup_steps=warmup_steps, warmup_start=warmup_start)


class SGD(_Compiled):
    """Stochastic gradient descent with momentum, dampening and Nesterov momentum (torch.optim.SGD)."""
    _kind = "sgd"

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, l1=0.0,
                 clip_value=0.0, clip_norm=0.0, schedule=None, warmup_steps=0, warmup_start=1 / 3):
        super().__init__(params, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         **_common(lr, weight_decay, l1, clip_value, clip_norm, schedule, warmup_steps, warmup_start))


class Adam(_Compiled):
    """Adam (torch.optim.Adam); weight_decay is L2 added to the gradient."""
    _kind = "adam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, l1=0.0, clip_value=0.0,
                 clip_norm=0.0, schedule=None, warmup_steps=0, warmup_start=1 / 3):
        super().__init__(params, beta1=betas[0], beta2=betas[1], eps=eps,
                         **_common(lr, weight_decay, l1, clip_value, clip_norm, schedule, warmup_steps, warmup_start))


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW; weight_decay defaults to 0.01 as there)."""
    _kind = "adamw"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **kwargs)


class RMSProp(_Compiled):
    """RMSProp with optional momentum and centering (torch.optim.RMSprop)."""
    _kind = "rmsprop"

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False, weight_decay=0.0, l1=0.0,
                 clip_value=0.0, clip_norm=0.0, schedule=None, warmup_steps=0, warmup_start=1 / 3):
        super().__init__(params, alpha=alpha, eps=eps, momentum=momentum, centered=centered,
                         **_common(lr, weight_decay, l1, clip_value, clip_norm, schedule, warmup_steps, warmup_start))


class AdaGrad(_Compiled):
    """AdaGrad (torch.optim.Adagrad)."""
    _kind = "adagrad"

    def __init__(self, params, lr=0.01, lr_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, weight_decay=0.0,
                 l1=0.0, clip_value=0.0, clip_norm=0.0, schedule=None, warmup_steps=0, warmup_start=1 / 3):
        super().__init__(params, lr_decay=lr_decay, initial_accumulator_value=initial_accumulator_value, eps=eps,
                         **_common(lr, weight_decay, l1, clip_value, clip_norm, schedule, warmup_steps, warmup_start))


class LBFGS:
    """Limited-memory BFGS for full-batch fits, as torch.optim.LBFGS (without line search).

    The loss and its gradients are one compiled program; the two-loop
    recursion runs in numpy on the flattened parameters, which are updated in
    place through their ``.value`` views::

        opt = xg.optim.LBFGS([w, b], max_iter=100)
        opt.step(loss, x=X, t=T)        # up to max_iter iterations; returns the initial loss
    """

    def __init__(self, params, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100):
        self.params = list(params)
        if not self.params:
            raise ValueError("LBFGS: no params to optimize")
        self.lr, self.max_iter = lr, max_iter
        self.max_eval = max_eval if max_eval is not None else max_iter * 5 // 4
        self.tolerance_grad, self.tolerance_change, self.history_size = tolerance_grad, tolerance_change, history_size
        self._programs = {}
        self._state = {"n_iter": 0, "func_evals": 0}

    def _program(self, loss):
        key = id(loss)
        if key not in self._programs:
            grads = _xgrad.grad(loss, self.params, allow_unused=True)
            self._programs[key] = (loss, loss.graph.compile([loss] + list(grads)))
        return self._programs[key][1]

    def _evaluate(self, prog, feeds):
        out = prog(feeds) if feeds else prog()
        return float(out[0]), np.concatenate([g.ravel() for g in out[1:]]).astype(np.float64)

    def _add(self, t, d):
        offset = 0
        for p in self.params:
            v = p.value
            v += (t * d[offset:offset + v.size]).reshape(v.shape).astype(v.dtype)
            offset += v.size

    def step(self, loss, feeds=None, **kwargs):
        """One torch-style LBFGS step (up to max_iter iterations) on loss; returns the loss before it."""
        feeds = dict(feeds or {}, **kwargs)
        prog = self._program(loss)
        st = self._state
        loss_value, flat_grad = self._evaluate(prog, feeds)
        orig_loss = loss_value
        current_evals = 1
        st["func_evals"] += 1
        if np.abs(flat_grad).max() <= self.tolerance_grad:
            return orig_loss
        d, t = st.get("d"), st.get("t")
        old_dirs, old_stps, ro = st.get("old_dirs"), st.get("old_stps"), st.get("ro")
        h_diag, prev_flat_grad, prev_loss = st.get("H_diag"), st.get("prev_flat_grad"), st.get("prev_loss")
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            st["n_iter"] += 1
            if st["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(old_dirs) == self.history_size:
                        old_dirs.pop(0), old_stps.pop(0), ro.pop(0)
                    old_dirs.append(y), old_stps.append(s), ro.append(1.0 / ys)
                    h_diag = ys / y.dot(y)
                al = [0.0] * len(old_dirs)
                q = -flat_grad
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q = q - al[i] * old_dirs[i]
                r = q * h_diag
                for i in range(len(old_dirs)):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r = r + (al[i] - be_i) * old_stps[i]
                d = r
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss_value
            t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * self.lr if st["n_iter"] == 1 else self.lr
            gtd = flat_grad.dot(d)
            if gtd > -self.tolerance_change:
                break
            self._add(t, d)
            ls_func_evals = 0
            opt_cond = False
            if n_iter != self.max_iter:
                loss_value, flat_grad = self._evaluate(prog, feeds)
                opt_cond = np.abs(flat_grad).max() <= self.tolerance_grad
                ls_func_evals = 1
            current_evals += ls_func_evals
            st["func_evals"] += ls_func_evals
            if n_iter == self.max_iter or current_evals >= self.max_eval or opt_cond:
                break
            if np.abs(d * t).max() <= self.tolerance_change or abs(loss_value - prev_loss) < self.tolerance_change:
                break
        st.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=h_diag, prev_flat_grad=prev_flat_grad,
                  prev_loss=prev_loss)
        return orig_loss
