"""Exercise 15 (chapter 9, docs/09-pcgrad.md): one multi-task training step.

Copy this file into a folder of your own, keeping its name (mine/: make capstone finds your
answers there), write the body of training_step, and check it:

    python -m tools.exercises check 15 mine/15_training_step.py

Everything you need exists; this exercise is the order. The pieces:

    model.task_loss(batch)        a scalar Tensor: the forward of one batch of task batch.task
                                  (encoder, then that task's head, then its loss)
    model.shared_parameters()     the encoder's parameters, which every task's gradient reaches
    model.parameters()            all of them: the encoder's and every task's head
    p.grad                        a parameter's gradient; backward() ADDS to it (None: nothing yet)
    tinybert.pcgrad.apply_pcgrad(shared, per_task_grads, rng)
                                  per_task_grads[t][k]: task t's gradient of shared[k] (or None);
                                  writes PCGrad's combination into the shared parameters' .grad
    tinybert.optim.clip_grad_norm(params, max_norm)  -> the global norm before clipping
    optimizer.step(), optimizer.zero_grad()          tinybert.optim.AdamW's

batches is {task: [batch, ...]}: a task may have several batches this step, and their
gradients add up. loss_weights is {task: weight}: a task's loss counts weight times.

One step: every task's forward and backward; the encoder receives PCGrad's combination of
the tasks' encoder gradients (each task's own, none mixed with another's), while each head
keeps the gradient its own task gave it; then the gradients are clipped to max_norm, AdamW
takes its step, and the next step starts from clean gradients. Return the norm that
clip_grad_norm returned. Use rng for PCGrad, and nothing else.

Try it first; train.py's step_gradients and its training loop are the answer (chapter 9,
"In the training loop", and chapter 8 show them).
"""
from tinybert import optim, pcgrad


def training_step(model, batches, loss_weights, optimizer, rng, max_norm):
    """model, batches, loss_weights, optimizer, rng, max_norm: as above.
    Returns the gradients' global norm before clipping (a float)."""
    raise NotImplementedError("write this: see docs/09-pcgrad.md")
