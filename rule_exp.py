sv=presence_scores(c.net,spec,va["images"]); th=0.322
from collections import Counter
cnt=Counter()
for i in range(len(sv)):
    on=set(va["objects"][i])
    for j,n in enumerate(names):
        if cands[j] and n not in on and sv[i,j]>=th:
            col,shp=spec.objects[n]
            same_col=[o for o in on if spec.objects[o][0]==col]; same_shp=[o for o in on if spec.objects[o][1]==shp]
            cnt[(shp, tuple(sorted(spec.objects[o][1] for o in same_col)), "shape-mate" if same_shp else "")]+=1
for k,v in cnt.most_common(12): print(v,k)
