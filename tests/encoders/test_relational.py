import torch

from graphdel.encoders.relational import (CompGCNConv, DeletionOperator, DeletionOperators, RelationalEncoder,
                                          RelationalEncoderConfig, add_inverse_edges, k_hop_masks,
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


def test_compgcn_conv_sums_original_and_inverse_edges_apart_exactly():
    torch.manual_seed(0)
    conv = CompGCNConv(4, num_relations=2).eval()
    x, rel = torch.randn(4, 4), torch.randn(5, 4)
    triples = torch.tensor([[0, 0, 1], [2, 1, 1], [1, 0, 3]])
    ei, et = add_inverse_edges(triples, 2)
    out, _ = conv(x, rel, ei, et)
    # by hand, edge by edge: node v sums x_u * rel[type] / sqrt(deg u * deg v) over the edges u -> v, the
    # original relations through W_out and their inverses through W_in
    deg = torch.bincount(ei[1], minlength=4).float()
    agg = {"out": torch.zeros(4, 4), "in": torch.zeros(4, 4)}
    for (u, v), t in zip(ei.t().tolist(), et.tolist()):
        agg["out" if t < 2 else "in"][v] += x[u] * rel[t] / (deg[u] * deg[v]).sqrt()
    h = conv.w_self(x * conv.self_rel) + conv.w_out(agg["out"]) + conv.w_in(agg["in"])
    assert torch.allclose(out, torch.tanh(conv.norm(h / 3.0 + conv.bias)), atol=1e-6)



def test_compgcn_conv_gradients_are_the_same_on_every_run_with_several_threads():
    # the messages' backward sums into each source node; advanced indexing's backward did not sum in the
    # same order from one run to the next once torch used two threads (the HPO graph's gradients differed)
    torch.manual_seed(0)
    n, edges, dim = 3000, 40000, 64
    conv = CompGCNConv(dim, num_relations=3).eval()
    triples = torch.stack([torch.randint(n, (edges,)), torch.randint(3, (edges,)), torch.randint(n, (edges,))], 1)
    ei, et = add_inverse_edges(triples, 3)
    x, rel = torch.randn(n, dim, requires_grad=True), torch.randn(6, dim, requires_grad=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = []
        for _ in range(4):
            out, _ = conv(x, rel, ei, et)
            grads.append(torch.autograd.grad(out.square().sum(), (x, rel)))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(g[0], grads[0][0]) and torch.equal(g[1], grads[0][1]) for g in grads[1:])

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


# ---------------------------------------------------------------- GNNDelete's operators and k-hop masks
#: A 6-node path 0-1-2-3-4-5 plus an isolated node 6, as (h, r, t) triples.
PATH = torch.tensor([[0, 0, 1], [1, 0, 2], [2, 1, 3], [3, 0, 4], [4, 1, 5]])


def test_k_hop_masks_of_a_path_are_the_hand_computed_sets():
    ei, _ = add_inverse_edges(PATH, 2)
    masks = k_hop_masks(torch.tensor([2, 3]), ei, 7, [0, 1, 2, 5])
    as_sets = [set(m.nonzero().flatten().tolist()) for m in masks]
    assert as_sets == [{2, 3}, {1, 2, 3, 4}, {0, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 4, 5}]   # 6 is never reached
    # hops follow both directions only when the inverse edges are given
    forward_only = k_hop_masks(torch.tensor([2]), PATH[:, [0, 2]].t(), 7, [1])
    assert set(forward_only[0].nonzero().flatten().tolist()) == {1, 2}     # k_hop_subgraph's default flow
    assert not k_hop_masks(torch.zeros(0, dtype=torch.long), ei, 7, [1]).any()


def test_deletion_operator_starts_at_identity_and_acts_only_on_its_rows_and_position():
    torch.manual_seed(0)
    masks = torch.zeros(2, 7, dtype=torch.bool)
    masks[0, [2, 3]] = True
    masks[1, [1, 2, 3, 4]] = True
    op = DeletionOperator(torch.tensor([1, 2]), masks, masks[0], dim=4)
    x = torch.randn(7, 4)
    assert torch.equal(op(x, 1), x) and torch.equal(op(x, 2), x)            # zero maps: exactly the identity
    with torch.no_grad():
        op.weight.normal_()
    y = op(x, 2)
    assert torch.equal(op(x, 0), x)                                         # no map at position 0
    assert torch.equal(y[[0, 5, 6]], x[[0, 5, 6]])                          # identity outside the mask
    assert torch.allclose(y[[1, 2, 3, 4]], x[[1, 2, 3, 4]] + x[[1, 2, 3, 4]] @ op.weight[1].t())


def test_encoder_applies_operators_after_their_layer_and_returns_position_states():
    torch.manual_seed(0)
    enc = RelationalEncoder(RelationalEncoderConfig(7, 2, dim=4, layers=2, dropout=0.0)).eval()
    ei, et = add_inverse_edges(PATH, 2)
    plain, _, states = enc(ei, et, positions=[0, 1, 2])
    assert torch.equal(states[2], plain) and torch.equal(states[0], enc.entity.weight)
    mask = torch.zeros(1, 7, dtype=torch.bool)
    mask[0, 3] = True
    op = DeletionOperator(torch.tensor([1]), mask, mask[0], dim=4)
    with torch.no_grad():
        op.weight.fill_(0.5)
    _, _, after = enc(ei, et, operators=[op], positions=[1, 2])
    assert torch.equal(after[0][[0, 1, 2, 4, 5, 6]], states[1][[0, 1, 2, 4, 5, 6]])
    assert not torch.equal(after[0][3], states[1][3])
    # layer 2 reads the changed state of node 3: its neighbours 2 and 4 (and itself) change, the rest not
    changed = (after[1] != states[2]).any(1).nonzero().flatten().tolist()
    assert changed == [2, 3, 4]


def test_deletion_operators_are_rebuilt_from_a_state_dict():
    masks = torch.zeros(2, 7, dtype=torch.bool)
    masks[:, 1] = True
    saved = DeletionOperators([DeletionOperator(torch.tensor([1, 2]), masks, masks[0], dim=4),
                               DeletionOperator(torch.tensor([2]), masks[:1], masks[0], dim=4)])
    with torch.no_grad():
        saved[0].weight.fill_(0.25)
    fresh = DeletionOperators()
    missing, unexpected = fresh.load_state_dict(saved.state_dict())
    assert not missing and not unexpected and len(fresh) == 2
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in saved.state_dict().items())
    fresh.load_state_dict(DeletionOperators().state_dict())                 # and shrunk back to none
    assert len(fresh) == 0
