"""Energy-based models: energy networks as targets, score-matching training (MDSM, thesis ch. 3),
maximum-likelihood (PCD) training with any kernel as negative sampler (thesis section 4.5, `contrastive`; its
negative phase as a component for any training loop, `NegativePhase`), annealed
Langevin sampling with the denoising jump and inpainting; CAP-RBM and Bernoulli RBM (thesis ch. 2) in `rbm`."""
from .annealed_langevin import ANNEALED_LANGEVIN, AnnealedLangevin, AnnealedLangevinState
from .contrastive import ContrastiveTrainer, MLTrainConfig, ml_loss, train_ebm
from .ml_sampling import sample_ml
from .negative_phase import NegativePhase, ReplayBuffer
from .denoising import denoise_jump
from .energy_target import EnergyTarget
from .losses import NoiseLevels, dsm_loss, esm_loss, mdsm_loss, ssm_loss
from .networks import GaussianEnergy, MLPEnergy, QuadraticEnergy, ResNetEnergy, build_network
from .rbm import CAPRBM, RBM, BernoulliRBM  # noqa: F401  (thesis ch. 2: CAP-RBM, Bernoulli RBM)
from .sampling import sample_ebm
from .preprocess import LogitTransform
from .schedules import TemperatureSchedule, make_schedule
from .trainer import EBMTrainConfig, EBMTrainer, load_model

__all__ = ["EnergyTarget", "MLPEnergy", "ResNetEnergy", "GaussianEnergy", "build_network", "mdsm_loss", "dsm_loss",
           "esm_loss", "ssm_loss", "NoiseLevels", "AnnealedLangevin", "AnnealedLangevinState", "ANNEALED_LANGEVIN",
           "TemperatureSchedule", "make_schedule", "denoise_jump", "sample_ebm", "EBMTrainer", "EBMTrainConfig",
           "train_ebm", "load_model", "ContrastiveTrainer", "MLTrainConfig", "NegativePhase", "ReplayBuffer", "ml_loss",
           "sample_ml", "QuadraticEnergy", "LogitTransform"]
