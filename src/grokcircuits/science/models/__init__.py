"""The two architectures: the parameter-sharing recursive model (TRM) and the standard transformer."""
from grokcircuits.config import ModelConfig
from grokcircuits.science.models.gpt import GPT
from grokcircuits.science.models.trm import STAGES, TRM


def build_model(config: ModelConfig, vocab_size: int):
    config.validate()
    if config.architecture == "trm":
        return TRM(config, vocab_size)
    return GPT(config, vocab_size)


def count_parameters(model) -> int:
    """Trainable parameters as the authors count them: the learned prefix vector (held in a sparse
    embedding buffer in their code) is not included."""
    return sum(p.numel() for name, p in model.named_parameters() if name != "prefix_vector")


__all__ = ["TRM", "GPT", "STAGES", "build_model", "count_parameters"]
