import torch

from graphdel.encoders.relational import (CompGCNConv, RelationalEncoder, RelationalEncoderConfig, add_inverse_edges,
                                          distmult, distmult_all)


def test_add_inverse_edges_exact():
    ei, et = add_inverse_edges(torch.tensor([[0, 1, 2], [3, 0, 1]]), num_relations=2)
    assert ei.tolist() == [[0, 3, 2, 1], [2, 1, 0, 3]]
    assert et.tolist() == [1, 0, 3, 2]


def test_distmult_exact():
    h, r, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -1.0]]), torch.tensor([[2.0, 5.0]])
    assert distmult(h, r, t).tolist() == [1 * 3 * 2 + 2 * -1 * 5]
    ents = torch.tensor([[2.0, 5.0], [1.0, 0.0], [0.0, 0.0]])
    assert distmult_all(h, r, ents).tolist() == [[-4.0, 3.0, 0.0]]


def test_compgcn_conv_isolated_node_sees_only_itself():
    torch.manual_seed(0)
    conv = CompGCNConv(4, num_relations=1).eval()
    x, rel = torch.randn(3, 4), torch.randn(2, 4)
    ei, et = add_inverse_edges(torch.tensor([[0, 0, 1]]), 1)
    out, rel_out = conv(x, rel, ei, et)
    assert out.shape == (3, 4) and rel_out.shape == (2, 4)
    alone, _ = conv(x, rel, torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert torch.allclose(out[2], alone[2])          # node 2 has no edge
    assert not torch.allclose(out[0], alone[0])      # node 0 receives a message from node 1
    # exact value for node 2: tanh(LayerNorm(W_S (x * z_self) / 3 + b))
    ref = torch.tanh(conv.norm(conv.w_self(x[2] * conv.self_rel) / 3.0 + conv.bias))
    assert torch.allclose(out[2], ref, atol=1e-6)


def test_encoder_zero_layers_is_embedding_and_messages_follow_edges():
    enc = RelationalEncoder(RelationalEncoderConfig(num_entities=5, num_relations=2, dim=8, layers=0)).eval()
    s, z = enc(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert torch.equal(s, enc.entity.weight) and z.shape == (5, 8)
    enc = RelationalEncoder(RelationalEncoderConfig(num_entities=5, num_relations=2, dim=8, layers=1)).eval()
    ei, et = add_inverse_edges(torch.tensor([[0, 1, 1]]), 2)
    with_edge, _ = enc(ei, et)
    without, _ = enc(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert not torch.allclose(with_edge[0], without[0]) and not torch.allclose(with_edge[1], without[1])
    assert torch.allclose(with_edge[2:], without[2:])
