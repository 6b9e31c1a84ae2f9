"""`NegativePhase` in a user's own training loop: a hand-written PyTorch loop of ~20 lines fits a full-covariance
Gaussian energy to data by maximum likelihood, whose fixed point (the data's mean and covariance) is known; with
negatives that barely leave the noise it is deliberately broken and fits the noise instead. Plus its bad input."""
import pytest
import torch

from entropy_mcmc.ebm_training import EnergyTarget, NegativePhase, QuadraticEnergy, ml_loss

pytestmark = pytest.mark.usefixtures("one_thread")
MEAN = torch.tensor([1.5, -1.0], dtype=torch.float64)
COV = torch.tensor([[0.5, 0.3], [0.3, 1.0]], dtype=torch.float64)


def fit(k_steps, reinit_fraction, updates=1500, seed=0):
    """The user's loop: Adam on the ML loss, negatives from the phase; returns the mean of the last 500 fits."""
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(4000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(COV).T + MEAN
    torch.manual_seed(seed)
    model = QuadraticEnergy(2).double()
    phase = NegativePhase(EnergyTarget(model), kernel="mala", k_steps=k_steps, buffer_size=512,
                          reinit_fraction=reinit_fraction, event_shape=(2,), dtype=torch.float64, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    means, covs = [], []
    for step in range(updates):
        x = data[torch.randint(len(data), (64,), generator=g)]
        neg = phase(x)
        loss = ml_loss(model(x), model(neg), penalty=0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= updates - 500:
            means.append(model.mean.detach().clone())
            covs.append(model.covariance.detach().clone())
    return torch.stack(means).mean(0), torch.stack(covs).mean(0), phase


def test_a_hand_written_loop_reaches_the_maximum_likelihood_fit():
    mean, cov, phase = fit(k_steps=3, reinit_fraction=0.0)
    assert torch.allclose(mean, MEAN, atol=0.1), mean
    assert torch.allclose(cov, COV, atol=0.12), cov
    assert abs(phase.accept - 0.6) < 0.15 and phase.step_size > 0  # the Robbins-Monro control at work


def test_negatives_that_stay_at_the_noise_fit_the_noise():
    mean, cov, _ = fit(k_steps=1, reinit_fraction=1.0)  # every negative fresh N(0, I) noise plus one MALA step
    assert not torch.allclose(mean, MEAN, atol=0.3), mean


def test_bad_input_is_one_clear_error():
    model = QuadraticEnergy(2)
    with pytest.raises(ValueError, match="event_shape"):
        NegativePhase(model, kernel="mala")
    with pytest.raises(ValueError, match="k_steps"):
        NegativePhase(model, kernel="mala", k_steps=-1, event_shape=(2,))
    with pytest.raises(ValueError, match="moving: train it in the loop"):
        NegativePhase(model, kernel="learned", event_shape=(2,))
    with pytest.raises(ValueError, match="moves binary states"):
        NegativePhase(model, kernel="bernoulli-gibbs", event_shape=(2,))
    with pytest.raises(TypeError, match="EnergyTarget"):
        NegativePhase(lambda x: x, event_shape=(2,))
