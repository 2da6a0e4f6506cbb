"""etcd members as lab replicas: the member process (member.py) and etcd's HTTP/JSON
gateway (gateway.py). The lab side is labctl/etcd/."""
