"""Neural manifold clustering and embedding (NMCE, thesis chapter 5 and appendix D).

`coding_rate` holds the objectives (eqs. 5.2-5.5), `gumbel` the cluster sampler (a `TransitionKernel`
whose chains are data points), `networks`, `augment`, `data`, `training` (the three stages, DDP-ready),
`assign` and `ensc` (labels from the learned features), `metrics`, `figures`, `experiment` (data set to
metrics.json) and `estimator` (scikit-learn's shape).
"""
from .coding_rate import (cluster_coding_rate, coding_rate, coding_rate_reduction, nmce_loss, tcr_loss,
                          view_similarity)
from .data import ClusterData, double_spiral, load_cluster_data, load_digits, load_image_folder, load_mat, \
    union_of_manifolds
from .estimator import NMCE
from .experiment import run_clustering
from .gumbel import GumbelClusterKernel, cluster_posterior, coassignment_matrix, gumbel_softmax
from .metrics import clustering_accuracy, clustering_scores
from .networks import ClusterNetwork, MLPBackbone, SmallResNet
from .training import NMCETrainer, Stage, NMCETrainConfig, three_stages

__all__ = ["coding_rate", "cluster_coding_rate", "coding_rate_reduction", "tcr_loss", "nmce_loss", "view_similarity",
           "GumbelClusterKernel", "gumbel_softmax", "cluster_posterior", "coassignment_matrix", "ClusterNetwork",
           "MLPBackbone", "SmallResNet", "NMCETrainer", "Stage", "NMCETrainConfig", "three_stages", "NMCE",
           "run_clustering", "ClusterData", "double_spiral", "union_of_manifolds", "load_digits", "load_mat",
           "load_image_folder", "load_cluster_data", "clustering_accuracy", "clustering_scores"]
