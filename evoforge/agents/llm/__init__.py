"""The LLM proposers: an OpenAI-compatible client, prompts per domain, the planner/coder graph.

``client`` talks to the endpoint (retries, a concurrency cap, token accounting), ``prompts`` builds
the planner/coder/repair messages, ``extract`` takes the candidate out of a reply, ``graph`` wires
planner → coder → quick check → bounded repair in one ``build_graph()``, and ``proposer`` turns it
into the ``Proposer`` interface (``LlmProposer``, and ``MixedProposer`` interleaving it with an
offline proposer). ``openai`` and ``langgraph`` come with the ``llm`` extra.
"""
