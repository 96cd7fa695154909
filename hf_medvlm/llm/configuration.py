"""`ChatEndpointArguments`: the judge / generator endpoint as a dataclass that `HfArgumentParser` recipes can embed.
The key itself never goes in a recipe: `llm_api_key_env` names the environment variable that holds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from .openai_backend import OpenAIChatBackend

__all__ = ["ChatEndpointArguments"]


@dataclass
class ChatEndpointArguments:
    llm_base_url: str | None = field(
        default=None,
        metadata={"help": "OpenAI-compatible API root, e.g. https://api.openai.com/v1 or http://localhost:8000/v1 "
                          "(vLLM/TGI), http://localhost:4000 (LiteLLM); Azure: https://<resource>.openai.azure.com. "
                          "Default: $OPENAI_BASE_URL (Azure: $AZURE_OPENAI_ENDPOINT)."},
    )
    llm_model: str | None = field(
        default=None, metadata={"help": "Model name (Azure: deployment name). Default: $HF_MEDVLM_LLM_MODEL."}
    )
    llm_api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "Name of the environment variable holding the API key."}
    )
    llm_api_style: str = field(
        default="openai",
        metadata={"help": "'openai' (OpenAI, vLLM, TGI, LiteLLM) or 'azure' (AzureOpenAI: deployment URL, api-key "
                          "header)."},
    )
    llm_api_version: str | None = field(
        default=None, metadata={"help": "Azure api-version, e.g. 2024-06-01. Default: $OPENAI_API_VERSION."}
    )
    llm_timeout: float = field(default=120.0, metadata={"help": "Seconds to wait for the server on each attempt."})
    llm_max_retries: int = field(
        default=6,
        metadata={"help": "Retries for 408/409/429/5xx, timeouts, connection errors and malformed replies, with the "
                          "openai client's exponential back-off (Retry-After honoured up to 2 minutes). 400 fails "
                          "that request; 401/403/404 stop the run at once."},
    )
    llm_concurrency: int = field(default=8, metadata={"help": "Requests in flight at once."})
    llm_cache_dir: str | None = field(
        default=None, metadata={"help": "On-disk reply cache keyed by request hash (reruns are free); unset: off."}
    )
    llm_prompt_price_per_million: float | None = field(
        default=None, metadata={"help": "USD per million prompt tokens, for the run report's cost estimate."}
    )
    llm_completion_price_per_million: float | None = field(
        default=None, metadata={"help": "USD per million completion tokens, for the run report's cost estimate."}
    )

    def build_backend(self) -> OpenAIChatBackend:
        # Each llm_* field but the key's variable and the concurrency is the OpenAIChatBackend argument of its name.
        kwargs = {f.name.removeprefix("llm_"): getattr(self, f.name) for f in fields(self)}
        del kwargs["concurrency"]
        api_key = os.environ.get(kwargs.pop("api_key_env")) or None
        return OpenAIChatBackend(api_key=api_key, **kwargs)
